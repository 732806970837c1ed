// Package kube is the little of the Kubernetes API initbox needs, over
// plain HTTPS and JSON: in-cluster or kubeconfig credentials, list, watch
// and discovery. No client-go: it would not fit the binary's budget.
package kube

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/initbox/initbox/internal/oserr"
	"github.com/initbox/initbox/internal/redact"
)

// ServiceAccountDir is where the kubelet mounts a pod's service account.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Config is where the API server is and how to talk to it.
type Config struct {
	Server    string // https://host:port
	Namespace string // the default namespace: the pod's own
	TokenFile string // read at every request, so a rotated token is used
	Token     string // a fixed token, when TokenFile is empty
	TLS       *tls.Config
}

// InCluster reads the pod's own configuration: the API server from
// KUBERNETES_SERVICE_HOST and _PORT, the token, CA and namespace from dir.
func InCluster(dir string, lookupEnv func(string) (string, bool)) (*Config, error) {
	host, _ := lookupEnv("KUBERNETES_SERVICE_HOST")
	port, _ := lookupEnv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("not in a cluster (KUBERNETES_SERVICE_HOST is not set): give --kubeconfig")
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("the service account's CA: %w", oserr.Reason(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no PEM certificate", filepath.Join(dir, "ca.crt"))
	}
	tokenFile := filepath.Join(dir, "token")
	if _, err := os.Stat(tokenFile); err != nil {
		return nil, fmt.Errorf("the service account's token: %w (is automountServiceAccountToken off?)", oserr.Reason(err))
	}
	ns, _ := os.ReadFile(filepath.Join(dir, "namespace"))
	return &Config{
		Server:    "https://" + net.JoinHostPort(host, port),
		Namespace: strings.TrimSpace(string(ns)),
		TokenFile: tokenFile,
		TLS:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}, nil
}

// kubeconfig is the part of a kubeconfig file initbox reads.
type kubeconfig struct {
	CurrentContext string `json:"current-context"`
	Clusters       []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server                   string `json:"server"`
			CertificateAuthority     string `json:"certificate-authority"`
			CertificateAuthorityData string `json:"certificate-authority-data"`
			InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify"`
			TLSServerName            string `json:"tls-server-name"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			Token                 string         `json:"token"`
			TokenFile             string         `json:"tokenFile"`
			ClientCertificate     string         `json:"client-certificate"`
			ClientCertificateData string         `json:"client-certificate-data"`
			ClientKey             string         `json:"client-key"`
			ClientKeyData         string         `json:"client-key-data"`
			Exec                  map[string]any `json:"exec"`
			AuthProvider          map[string]any `json:"auth-provider"`
		} `json:"user"`
	} `json:"users"`
	Contexts []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster   string `json:"cluster"`
			User      string `json:"user"`
			Namespace string `json:"namespace"`
		} `json:"context"`
	} `json:"contexts"`
}

// FromKubeconfig reads path's current context. Paths inside are relative
// to the file. Exec and auth-provider plugins are not supported: there is
// nothing to run them with in the image.
func FromKubeconfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", path, oserr.Reason(err))
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %v", path, err)
	}
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(filepath.Dir(path), p)
	}
	ctxName := kc.CurrentContext
	var cluster, user, ns string
	found := false
	for _, c := range kc.Contexts {
		if c.Name == ctxName || ctxName == "" && len(kc.Contexts) == 1 {
			cluster, user, ns, found = c.Context.Cluster, c.Context.User, c.Context.Namespace, true
		}
	}
	if !found {
		return nil, fmt.Errorf("--kubeconfig %s: no context %q", path, ctxName)
	}
	cfg := &Config{Namespace: ns, TLS: &tls.Config{MinVersion: tls.VersionTLS12}}
	found = false
	for _, c := range kc.Clusters {
		if c.Name != cluster {
			continue
		}
		found = true
		cfg.Server = strings.TrimSuffix(c.Cluster.Server, "/")
		cfg.TLS.InsecureSkipVerify = c.Cluster.InsecureSkipTLSVerify
		cfg.TLS.ServerName = c.Cluster.TLSServerName
		ca, err := dataOrFile(c.Cluster.CertificateAuthorityData, rel(c.Cluster.CertificateAuthority))
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: cluster %s: %w", path, cluster, err)
		}
		if ca != nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(ca) {
				return nil, fmt.Errorf("--kubeconfig %s: cluster %s: no PEM certificate in its certificate authority", path, cluster)
			}
			cfg.TLS.RootCAs = pool
		}
	}
	if !found || cfg.Server == "" {
		return nil, fmt.Errorf("--kubeconfig %s: no cluster %q with a server", path, cluster)
	}
	for _, u := range kc.Users {
		if u.Name != user {
			continue
		}
		if u.User.Exec != nil || u.User.AuthProvider != nil {
			return nil, fmt.Errorf("--kubeconfig %s: user %s authenticates through a plugin, which initbox cannot run: use a token or a client certificate", path, user)
		}
		cfg.Token, cfg.TokenFile = u.User.Token, rel(u.User.TokenFile)
		cert, err := dataOrFile(u.User.ClientCertificateData, rel(u.User.ClientCertificate))
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: user %s: %w", path, user, err)
		}
		key, err := dataOrFile(u.User.ClientKeyData, rel(u.User.ClientKey))
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: user %s: %w", path, user, err)
		}
		if cert != nil || key != nil {
			pair, err := tls.X509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("--kubeconfig %s: user %s: the client certificate: %v", path, user, err)
			}
			cfg.TLS.Certificates = []tls.Certificate{pair}
		}
	}
	return cfg, nil
}

func dataOrFile(data, file string) ([]byte, error) {
	if data != "" {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, errors.New("invalid base64 data")
		}
		return b, nil
	}
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, oserr.Reason(err))
	}
	return b, nil
}

// Connect makes the client every applet uses: --kubeconfig when given,
// else the pod's service account in saDir, else $KUBECONFIG (its first
// file) outside a cluster.
func Connect(kubeconfig, saDir string, lookupEnv func(string) (string, bool), secrets *redact.Set) (*Client, error) {
	path := kubeconfig
	if path == "" {
		if host, _ := lookupEnv("KUBERNETES_SERVICE_HOST"); host == "" {
			path, _ = lookupEnv("KUBECONFIG")
			path, _, _ = strings.Cut(path, ":")
		}
	}
	var cfg *Config
	var err error
	if path != "" {
		cfg, err = FromKubeconfig(path)
	} else {
		cfg, err = InCluster(saDir, lookupEnv)
	}
	if err != nil {
		return nil, err
	}
	return New(cfg, secrets), nil
}
