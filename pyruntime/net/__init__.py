"""Host networking for the bridge plugin: rtnetlink, host-local IPAM, firewall backends."""
