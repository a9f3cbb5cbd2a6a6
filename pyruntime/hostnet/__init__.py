"""Host networking helpers: rtnetlink, links, the IPAM store, firewall rules and their backends,
port claims, locks and names. They know nothing of CNI: they raise `HostNetError`, which the
plugin turns into a CNI error."""
