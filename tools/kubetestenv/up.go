package main

// The `up` supervisor: embedded etcd in this process, kube-apiserver and
// kube-controller-manager as child processes of this same binary (separate processes, so the
// upstream commands' global state never clashes). Children die with the supervisor
// (Pdeathsig) and the supervisor stops when its stdin closes, so a test process that exits
// takes the whole control plane with it.

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startEtcd(dir string) (*embed.Etcd, string, error) {
	cport, err := freePort()
	if err != nil {
		return nil, "", err
	}
	pport, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Name = "kubetestenv"
	cfg.Dir = filepath.Join(dir, "etcd")
	curl, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(cport))
	purl, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(pport))
	cfg.ListenClientUrls = []url.URL{*curl}
	cfg.AdvertiseClientUrls = []url.URL{*curl}
	cfg.ListenPeerUrls = []url.URL{*purl}
	cfg.AdvertisePeerUrls = []url.URL{*purl}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.UnsafeNoFsync = true // throwaway data: speed over durability
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, "", fmt.Errorf("etcd did not become ready in 60s")
	}
	return e, curl.String(), nil
}

func startChild(dir, name string, args ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{name}, args...)...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, cmd.Start()
}

// waitReady polls https://127.0.0.1:port/readyz until it answers 200.
func waitReady(port int, child *exec.Cmd, timeout time.Duration) error {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // loopback readiness probe only
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("kube-apiserver exited: %v", err)
		default:
		}
		resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/readyz", port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver not ready after %s", timeout)
}

func stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _, _ = cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
	}
}

func runUp(args []string) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	dir := fs.String("dir", "", "state directory (created; removed on exit unless --keep)")
	keep := fs.Bool("keep", false, "keep the state directory on exit")
	ignoreStdin := fs.Bool("ignore-stdin", false, "run until SIGTERM/SIGINT even if stdin closes (for background use)")
	fixedPort := fs.Int("port", 0, "kube-apiserver port (default: a free one); with --keep and the same --dir, a restart on the same state keeps the endpoint")
	noKCM := fs.Bool("no-controller-manager", false, "do not start kube-controller-manager")
	controllers := fs.String("controllers", "garbage-collector-controller,namespace-controller,daemonset-controller,serviceaccount-controller", "kube-controller-manager controllers")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "kubetestenv-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		*dir = d
	}
	abs, _ := filepath.Abs(*dir)
	*dir = abs
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := up(*dir, *fixedPort, !*noKCM, *controllers, *ignoreStdin)
	if !*keep {
		_ = os.RemoveAll(*dir)
	}
	return code
}

func up(dir string, fixedPort int, withKCM bool, controllers string, ignoreStdin bool) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "kubetestenv: "+format+"\n", a...)
		return 1
	}
	if err := writePKI(dir); err != nil {
		return fail("pki: %v", err)
	}
	etcd, etcdURL, err := startEtcd(dir)
	if err != nil {
		return fail("etcd: %v", err)
	}
	defer etcd.Close()

	port := fixedPort
	if port == 0 {
		port, err = freePort()
		if err != nil {
			return fail("port: %v", err)
		}
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	api, err := startChild(dir, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--tls-cert-file="+p("apiserver.crt"),
		"--tls-private-key-file="+p("apiserver.key"),
		"--client-ca-file="+p("ca.crt"),
		"--service-account-issuer=https://127.0.0.1:"+strconv.Itoa(port),
		"--service-account-key-file="+p("sa.pub"),
		"--service-account-signing-key-file="+p("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--cert-dir="+p("apiserver-generated"),
		"--profiling=false",
		"-v=1",
	)
	if err != nil {
		return fail("kube-apiserver: %v", err)
	}
	defer stop(api)
	if err := waitReady(port, api, 120*time.Second); err != nil {
		return fail("%v (see %s)", err, p("kube-apiserver.log"))
	}
	kubeconfig, err := writeKubeconfig(dir, port)
	if err != nil {
		return fail("kubeconfig: %v", err)
	}
	var kcmCmd *exec.Cmd
	if withKCM {
		kcmCmd, err = startChild(dir, "kube-controller-manager",
			"--kubeconfig="+kubeconfig,
			"--authentication-kubeconfig="+kubeconfig,
			"--authorization-kubeconfig="+kubeconfig,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=0",
			"--controllers="+controllers,
			"--use-service-account-credentials=false",
			"-v=1",
		)
		if err != nil {
			return fail("kube-controller-manager: %v", err)
		}
		defer stop(kcmCmd)
	}
	fmt.Printf("READY %s\n", kubeconfig)

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	stdinClosed := make(chan struct{})
	if !ignoreStdin {
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	}
	select {
	case <-ctx.Done():
	case <-stdinClosed:
	}
	return 0
}
