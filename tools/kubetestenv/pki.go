package main

// Certificates for the loopback control plane: one CA, a serving certificate with IP SANs
// (rustls in kube-rs checks them), an admin client certificate in system:masters, and the
// service-account signing key. Everything is valid for a week; the directory is throwaway.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

type pki struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

func writeKey(path string, key any) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func newPKI(dir string) (*pki, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kubetestenv-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	if err := writePEM(filepath.Join(dir, "ca.crt"), "CERTIFICATE", der); err != nil {
		return nil, err
	}
	return &pki{caCert: cert, caKey: key}, nil
}

// leaf writes name.crt/name.key signed by the CA.
func (p *pki) leaf(dir, name string, subject pkix.Name, usage x509.ExtKeyUsage, ips []net.IP, dns []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               subject,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		IPAddresses:           ips,
		DNSNames:              dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, name+".crt"), "CERTIFICATE", der); err != nil {
		return err
	}
	return writeKey(filepath.Join(dir, name+".key"), key)
}

// writePKI writes ca.crt, apiserver.{crt,key}, admin.{crt,key} and sa.{key,pub} into dir.
// A dir that already holds them (a restart on kept state) keeps them, so clients keep
// trusting the apiserver and service-account tokens stay valid.
func writePKI(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "sa.pub")); err == nil {
		return nil
	}
	p, err := newPKI(dir)
	if err != nil {
		return err
	}
	if err := p.leaf(dir, "apiserver", pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth,
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.0.0.1")},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}); err != nil {
		return err
	}
	if err := p.leaf(dir, "admin", pkix.Name{CommonName: "kubetestenv-admin", Organization: []string{"system:masters"}},
		x509.ExtKeyUsageClientAuth, nil, nil); err != nil {
		return err
	}
	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, "sa.key"), sa); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, "sa.pub"), "PUBLIC KEY", pub)
}

// writeKubeconfig writes an admin kubeconfig for https://127.0.0.1:port atomically.
func writeKubeconfig(dir string, port int) (string, error) {
	b64 := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		return base64.StdEncoding.EncodeToString(b), err
	}
	ca, err := b64("ca.crt")
	if err != nil {
		return "", err
	}
	crt, err := b64("admin.crt")
	if err != nil {
		return "", err
	}
	key, err := b64("admin.key")
	if err != nil {
		return "", err
	}
	body := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetestenv
  cluster:
    server: https://127.0.0.1:%d
    certificate-authority-data: %s
users:
- name: kubetestenv-admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: kubetestenv
  context:
    cluster: kubetestenv
    user: kubetestenv-admin
    namespace: default
current-context: kubetestenv
`, port, ca, crt, key)
	path := filepath.Join(dir, "kubeconfig")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}
