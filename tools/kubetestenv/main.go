// Command kubetestenv is a multi-call binary that runs a real Kubernetes control plane on
// loopback for monitoring-operator's tests and demo: embedded etcd, kube-apiserver and
// kube-controller-manager (garbage collector, namespace, DaemonSet and service-account
// controllers), plus kubectl. No container runtime and no kubelet: Nodes and Pod status are
// whatever the tests write.
//
//	kubetestenv up --dir D [--keep] [--port P]
//	                                  start everything, write D/kubeconfig, print "READY <path>",
//	                                  stop when stdin closes or on SIGTERM/SIGINT; a kept D
//	                                  started again resumes its etcd data and PKI
//	kubetestenv kube-apiserver ...    upstream kube-apiserver
//	kubetestenv kube-controller-manager ...
//	kubetestenv kubectl ...           upstream kubectl, same minor as the server
package main

import (
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectl "k8s.io/kubectl/pkg/cmd"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kubetestenv up|kube-apiserver|kube-controller-manager|kubectl ...")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "up":
		os.Exit(runUp(args))
	case "kube-apiserver":
		c := apiserver.NewAPIServerCommand()
		c.SetArgs(args)
		os.Exit(cli.Run(c))
	case "kube-controller-manager":
		c := kcm.NewControllerManagerCommand()
		c.SetArgs(args)
		os.Exit(cli.Run(c))
	case "kubectl":
		c := kubectl.NewDefaultKubectlCommand()
		c.SetArgs(args)
		os.Exit(cli.Run(c))
	}
	fmt.Fprintf(os.Stderr, "unknown subcommand %q\n", os.Args[1])
	os.Exit(2)
}
