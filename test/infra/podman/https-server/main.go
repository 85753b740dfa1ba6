// The client in the pods is busybox wget, whose TLS 1.2 ClientHello has no
// signature_algorithms extension: the server must then sign with SHA-1, which Go refuses
// unless told.
//
//go:debug tlssha1=1

// Command https-server is the e2e pods' web server: HTTPS on a loopback port with a
// self-signed certificate made at start (the standard library only, so it builds offline
// into a static binary for the busybox app image). Each answer waits -delay first, so a
// client's connection stays open long enough for the sidecar's socket sensor to see it.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net/http"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8443", "address to serve HTTPS on")
	delay := flag.Duration("delay", 2*time.Second, "how long each answer waits")
	flag.Parse()

	cert, err := selfSigned()
	if err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(*delay)
		fmt.Fprintf(w, "hello from %s\n", r.URL.Path)
	})
	server := &http.Server{Addr: *listen, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	log.Printf("serving HTTPS on %s", *listen)
	log.Fatal(server.ListenAndServeTLS("", ""))
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
