"""The CNI protocol: env and stdin of a plugin call, versions, results, the error, running a
plugin, and the conflist runner (the runtime side)."""
