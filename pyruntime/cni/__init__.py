"""CNI protocol side of the bridge plugin: environment and stdin parsing, versions, results."""
