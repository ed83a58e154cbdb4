package httpapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/airtab/airtab/crypto"
)

// certValidity is how long a generated server certificate is valid. The
// Go client pins the certificate itself, so its expiry protects nothing
// there; browsers trust it through the aircraft CA, and ten years keeps
// either from expiring in service. (Browsers cap the validity of publicly
// trusted certificates, not of ones under a locally installed CA.)
const certValidity = 10 * 365 * 24 * time.Hour

// caValidity is how long a generated aircraft CA is valid: longer than
// any server certificate it issues.
const caValidity = 20 * 365 * 24 * time.Hour

// CA is the aircraft's own certificate authority: created on the cabin
// server's first start, installed by the airline on its handhelds, and the
// issuer of the server certificate, so the handheld's browser trusts the
// cabin server's HTTPS without a warning. Its name constraints limit it to
// private and loopback addresses, "localhost", names under .local and the
// hosts named when it was made: even a CA key stolen from a cabin server
// cannot vouch for a public web site on the handhelds that trust it.
type CA struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// PEM is Cert in PEM, what handhelds install.
	PEM []byte
	key *ecdsa.PrivateKey
}

// caPermittedIPs are the address ranges an aircraft CA may vouch for: the
// private, carrier-grade NAT, link-local and loopback ranges a cabin
// network uses.
var caPermittedIPs = []string{
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8",
	"::1/128", "fc00::/7", "fe80::/10",
}

// LoadOrCreateCA loads the CA certificate and key in certFile and keyFile,
// or, when neither exists, generates an ECDSA P-256 CA named for name (the
// aircraft registration; may be empty) whose name constraints permit the
// DNS names among hosts, "localhost", names under .local, and private and
// loopback IPs; it writes it there (the key with mode 0600). created
// reports a new CA. One file without the other, or a certificate that is
// not a CA, is an error.
func LoadOrCreateCA(certFile, keyFile, name string, hosts []string, now time.Time, rnd io.Reader) (ca *CA, created bool, err error) {
	_, certErr := os.Stat(certFile)
	_, keyErr := os.Stat(keyFile)
	switch {
	case certErr == nil && keyErr == nil:
		ca, err = loadCA(certFile, keyFile)
		return ca, false, err
	case !errors.Is(certErr, fs.ErrNotExist) || !errors.Is(keyErr, fs.ErrNotExist):
		return nil, false, fmt.Errorf("TLS CA certificate %s and key %s: need both or neither (%v, %v)", certFile, keyFile, certErr, keyErr)
	}
	certPEM, keyPEM, err := generateCA(name, hosts, now, rnd)
	if err != nil {
		return nil, false, err
	}
	if err := crypto.WriteFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return nil, false, fmt.Errorf("write TLS CA key: %w", err)
	}
	if err := crypto.WriteFileAtomic(certFile, certPEM, 0o644); err != nil {
		return nil, false, fmt.Errorf("write TLS CA certificate: %w", err)
	}
	ca, err = parseCA(certPEM, keyPEM)
	return ca, true, err
}

func loadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS CA: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS CA: %w", err)
	}
	return parseCA(certPEM, keyPEM)
}

func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load TLS CA: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("load TLS CA: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !cert.IsCA || !ok {
		return nil, fmt.Errorf("load TLS CA: %q is not an ECDSA CA certificate", cert.Subject.CommonName)
	}
	return &CA{Cert: cert, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), key: key}, nil
}

func generateCA(name string, hosts []string, now time.Time, rnd io.Reader) (certPEM, keyPEM []byte, err error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, nil, fmt.Errorf("generate TLS CA key: %w", err)
	}
	serial, err := rand.Int(rnd, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate TLS CA serial: %w", err)
	}
	cn := "Airtab cabin CA"
	if name != "" {
		cn += " " + name
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Airtab"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		// Critical, so a verifier that cannot enforce the constraints
		// refuses the CA instead of trusting it for every name.
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         []string{"localhost", "local"},
	}
	for _, h := range hosts {
		if h != "" && net.ParseIP(h) == nil && h != "localhost" {
			tmpl.PermittedDNSDomains = append(tmpl.PermittedDNSDomains, h)
		}
	}
	for _, cidr := range caPermittedIPs {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			panic("httpapi: bad CA range " + cidr)
		}
		tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges, n)
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create TLS CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode TLS CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// Issued reports whether cert's leaf was signed by the CA.
func (ca *CA) Issued(cert tls.Certificate) bool {
	if len(cert.Certificate) == 0 {
		return false
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	return err == nil && leaf.CheckSignatureFrom(ca.Cert) == nil
}

// CAFiles returns where LoadOrCreateCertificate keeps the CA for a server
// certificate at certFile: ca.crt and ca.key beside it.
func CAFiles(certFile string) (caCert, caKey string) {
	dir := filepath.Dir(certFile)
	return filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
}

// LoadOrCreateCertificate loads the TLS certificate and key in certFile and
// keyFile, or, when neither exists, issues an ECDSA P-256 server
// certificate for localhost, 127.0.0.1, ::1 and hosts from the CA beside
// it (CAFiles; created if missing, see LoadOrCreateCA) and writes it there:
// certFile holds the certificate and then the CA's, the chain a browser
// needs; keyFile has mode 0600. created reports a new certificate. One file
// without the other is an error.
func LoadOrCreateCertificate(certFile, keyFile string, hosts []string, now time.Time, rnd io.Reader) (cert tls.Certificate, created bool, err error) {
	if cert, ok, err := loadCertificate(certFile, keyFile); ok || err != nil {
		return cert, false, err
	}
	caCert, caKey := CAFiles(certFile)
	ca, _, err := LoadOrCreateCA(caCert, caKey, "", hosts, now, rnd)
	if err != nil {
		return cert, false, err
	}
	return LoadOrCreateCertificateFrom(ca, certFile, keyFile, hosts, now, rnd)
}

// LoadOrCreateCertificateFrom is LoadOrCreateCertificate with the issuing
// CA given. A loaded certificate is returned as it is on disk, whoever
// issued it (an airline may install its own).
func LoadOrCreateCertificateFrom(ca *CA, certFile, keyFile string, hosts []string, now time.Time, rnd io.Reader) (cert tls.Certificate, created bool, err error) {
	if cert, ok, err := loadCertificate(certFile, keyFile); ok || err != nil {
		return cert, false, err
	}
	certPEM, keyPEM, err := ca.issue(hosts, now, rnd)
	if err != nil {
		return cert, false, err
	}
	if err := crypto.WriteFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return cert, false, fmt.Errorf("write TLS key: %w", err)
	}
	if err := crypto.WriteFileAtomic(certFile, certPEM, 0o644); err != nil {
		return cert, false, fmt.Errorf("write TLS certificate: %w", err)
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	return cert, true, err
}

// loadCertificate loads certFile and keyFile when both exist (ok), and
// reports neither existing as !ok with no error.
func loadCertificate(certFile, keyFile string) (cert tls.Certificate, ok bool, err error) {
	_, certErr := os.Stat(certFile)
	_, keyErr := os.Stat(keyFile)
	switch {
	case certErr == nil && keyErr == nil:
		cert, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return cert, false, fmt.Errorf("load TLS certificate: %w", err)
		}
		return cert, true, nil
	case !errors.Is(certErr, fs.ErrNotExist) || !errors.Is(keyErr, fs.ErrNotExist):
		return cert, false, fmt.Errorf("TLS certificate %s and key %s: need both or neither (%v, %v)", certFile, keyFile, certErr, keyErr)
	}
	return cert, false, nil
}

// issue makes a server certificate for localhost, the loopback addresses
// and hosts, signed by the CA, and returns it followed by the CA's
// certificate, and its key.
func (ca *CA) issue(hosts []string, now time.Time, rnd io.Reader) (certPEM, keyPEM []byte, err error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, nil, fmt.Errorf("generate TLS key: %w", err)
	}
	serial, err := rand.Int(rnd, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate TLS serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "Airtab cabin server"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		switch ip := net.ParseIP(h); {
		case ip != nil && ip.IsUnspecified():
			// 0.0.0.0 or :: is not an address a handheld dials.
		case ip != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		case h != "" && h != "localhost":
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rnd, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("create TLS certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode TLS key: %w", err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.PEM...)
	return chain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// Fingerprint returns the SHA-256 of the certificate's DER bytes in
// lower-case hex: what handhelds pin.
func Fingerprint(cert tls.Certificate) string {
	if len(cert.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(cert.Certificate[0])
	return hex.EncodeToString(sum[:])
}
