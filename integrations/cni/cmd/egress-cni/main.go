// Command egress-cni is the chained CNI plugin: install it in the runtime's plugin directory
// and list it after the plugin that gives pods their addresses (see README).
package main

import "egresscni/plugin"

func main() { plugin.Main() }
