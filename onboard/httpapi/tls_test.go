package httpapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAircraftCA checks the server certificate chains to the aircraft CA
// for the cabin server's names and addresses, as a browser with the CA
// installed checks it, and that the CA cannot vouch for other names.
func TestAircraftCA(t *testing.T) {
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	now := time.Now()
	cert, created, err := LoadOrCreateCertificate(crt, key, []string{"cabin.airtab.aero", "10.0.0.1", "0.0.0.0"}, now, nil)
	if err != nil || !created {
		t.Fatalf("create: created %v, %v", created, err)
	}
	if got := len(cert.Certificate); got != 2 {
		t.Fatalf("chain has %d certificates, want the server's and the CA's", got)
	}
	caCrt, caKey := CAFiles(crt)
	ca, caCreated, err := LoadOrCreateCA(caCrt, caKey, "", nil, now, nil)
	if err != nil || caCreated {
		t.Fatalf("load CA: created %v, %v; want the one made with the certificate", caCreated, err)
	}
	if !ca.Issued(cert) {
		t.Fatal("server certificate not issued by the CA beside it")
	}
	if fi, err := os.Stat(caKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, name := range []string{"cabin.airtab.aero", "localhost", "10.0.0.1", "127.0.0.1", "::1"} {
		t.Run("OK/"+name, func(t *testing.T) {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now}); err != nil {
				t.Fatalf("verify for %s: %v", name, err)
			}
		})
	}
	t.Run("ErrOtherName", func(t *testing.T) {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "cabin.example.com", Roots: roots, CurrentTime: now}); err == nil {
			t.Fatal("verified for a name not in the certificate")
		}
	})
	t.Run("ErrUnspecifiedAddress", func(t *testing.T) {
		for _, ip := range leaf.IPAddresses {
			if ip.IsUnspecified() {
				t.Fatalf("certificate names %v", ip)
			}
		}
	})
	t.Run("ErrNameConstraints", func(t *testing.T) {
		// A certificate for a public site, signed with the CA's key (as a
		// thief of the key would): the CA's constraints refuse it.
		for _, name := range []string{"www.bank.example", "8.8.8.8"} {
			forged := issueRaw(t, ca, name, now)
			_, err := forged.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now})
			if err == nil || !strings.Contains(err.Error(), "constraint") {
				t.Fatalf("forged certificate for %s: err = %v, want a name constraint violation", name, err)
			}
		}
	})
	t.Run("Reloaded", func(t *testing.T) {
		again, created, err := LoadOrCreateCertificate(crt, key, nil, now, nil)
		if err != nil || created || Fingerprint(again) != Fingerprint(cert) || len(again.Certificate) != 2 {
			t.Fatalf("reload: created %v, %v; want the same chain", created, err)
		}
	})
	t.Run("ErrHalfCA", func(t *testing.T) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "ca.crt"), ca.PEM, 0o644)
		_, _, err := LoadOrCreateCertificate(filepath.Join(d, "tls.crt"), filepath.Join(d, "tls.key"), nil, now, nil)
		if err == nil || !strings.Contains(err.Error(), "need both or neither") {
			t.Fatalf("CA certificate without its key: err = %v", err)
		}
	})
}

func issueRaw(t *testing.T, ca *CA, name string, now time.Time) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
