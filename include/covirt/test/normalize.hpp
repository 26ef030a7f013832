// covirt: the test driver's define-time rules (libvirt 9.0's test driver): the defaults it fills
// in at define and create, and its capabilities. The test driver applies them; they are public
// so that tools can normalise a document the way `virsh -c test:///default define` would.
#pragma once

#include <covirt/domain/xml.hpp>

namespace covirt {

/// Defaults and normalisations libvirt 9.0's test driver applies at define/create
/// time (uuid, currentMemory, placement, arch, boot dev, clock, on_*, MACs, implicit
/// controllers, drive addresses, console<->serial, video/graphics defaults, ifnames).
result<void> normalize_domain_for_test_driver(domain_config& d, diagnostics& diag);

/// Changes the test driver applies when a domain starts. libvirt 9.0's test driver
/// changes nothing but the id (interface names are assigned at define); kept as a hook.
void prepare_live_domain_for_test_driver(domain_config& d, int id);

/// What libvirt 9.0's test driver adds at net-define (uuid, bridge stp/delay).
result<void> normalize_network_for_test_driver(network_config& n, diagnostics& diag);

/// Exactly what `virsh -c test:///default capabilities` prints (libvirt 9.0).
capabilities test_driver_default_capabilities();

}  // namespace covirt
