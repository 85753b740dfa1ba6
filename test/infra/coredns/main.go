// The test cluster's DNS: CoreDNS with only the plugins the e2e tier needs. `hosts` answers
// the names a test serves (www.google.com → an address inside the test's own network) and
// falls through to `template`, which answers NXDOMAIN for every other name, so nothing is
// ever asked of the internet and a resolver's search-list tries end at once; `bind` keeps
// it on the address the kubelet's clusterDNS and the kube-dns Service name; `errors` and
// `log` show each query in its output.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/template"
)

// The order plugins handle a query in: plugin.cfg's, except that template comes after hosts
// (there it comes first), as the catch-all for what hosts does not know.
func init() {
	dnsserver.Directives = []string{"bind", "errors", "log", "hosts", "template"}
}

func main() {
	coremain.Run()
}
