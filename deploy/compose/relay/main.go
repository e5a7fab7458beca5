// Command relay gives cmd/devaws fixed addresses, for the compose test
// (deploy/compose). devaws serves the AWS emulator and the ECS credentials
// endpoint on random loopback ports and hands them to the command it runs in
// its environment; run as that command, relay serves both on fixed addresses:
//
//	devaws -- relay [-aws ADDR] [-creds ADDR]   serve until killed
//	relay probe [ADDR]                          exit 0 if ADDR accepts a connection (a healthcheck)
//
// The credentials relay adds devaws's authorization token, so a client needs
// only AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:4567/creds.
//
// It goes away once devaws can listen on a given address itself.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "probe" {
		addr := "127.0.0.1:4566"
		if len(args) > 1 {
			addr = args[1]
		}
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	awsAddr := fs.String("aws", "0.0.0.0:4566", "serve the AWS emulator on `ADDR`")
	credsAddr := fs.String("creds", "127.0.0.1:4567", "serve the credentials endpoint on `ADDR`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	awsURL, err := url.Parse(getenv("AWS_ENDPOINT_URL"))
	if err != nil || awsURL.Host == "" {
		return fmt.Errorf("AWS_ENDPOINT_URL %q: run me as devaws's command", getenv("AWS_ENDPOINT_URL"))
	}
	credsURL, err := url.Parse(getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"))
	if err != nil || credsURL.Host == "" {
		return fmt.Errorf("AWS_CONTAINER_CREDENTIALS_FULL_URI %q: run me as devaws's command", getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"))
	}
	token := getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")

	awsProxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(awsURL)
		r.Out.Host = r.In.Host // keep the Host the client signed
	}}
	credsProxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.Out.URL = credsURL
		r.Out.Host = credsURL.Host
		r.Out.Header.Set("Authorization", token)
	}}
	errc := make(chan error, 2)
	for _, s := range []struct {
		addr string
		h    http.Handler
	}{{*awsAddr, awsProxy}, {*credsAddr, credsProxy}} {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 5 * time.Second}
		go func() { errc <- srv.Serve(ln) }()
	}
	fmt.Fprintf(stderr, "relay: AWS on %s, credentials on %s\n", *awsAddr, *credsAddr)
	err = <-errc
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
