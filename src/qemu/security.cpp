// The QEMU driver's security model: QEMU runs as the caller's user with no confinement, which is
// libvirt's "none" security driver (DOI "0"; a label empty on every domain), as libvirt's
// unprivileged qemu:///session reports it. libvirt's DAC model (<seclabel model='dac'>, QEMU
// run as another user, image owners changed and given back) would go here.
#include "driver_state.hpp"

namespace covirt::qemu {

op<security_model> driver::node_get_security_model(diagnostics&) {
  security_model m;
  m.model = "none";
  m.doi = "0";
  co_return m;
}

op<security_label> driver::get_security_label(const domain_key& key, diagnostics& diag) {
  auto d = s_->get(key, diag);
  if (!d) co_return failure(d.error());
  co_return security_label{};
}

}  // namespace covirt::qemu
