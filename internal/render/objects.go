package render

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/keep"
	"github.com/initbox/initbox/internal/kube"
)

// objects are render's --configmap and --secret: read through the API with
// the pod's service account (once, or watched with --watch, so a change is
// seen in milliseconds rather than at the kubelet's next volume refresh).
type objects struct {
	configMaps, secrets       []string
	namespace, kubeconfig, sa string
	silence                   time.Duration

	watches []*kube.ObjectWatch
	ns      string
}

func (o *objects) flags(fs *cli.FlagSet) {
	fs.Strings(&o.configMaps, "configmap", "read the ConfigMap `NAME` through the API into .ConfigMaps.NAME.KEY (repeatable; watched with --watch)")
	fs.Strings(&o.secrets, "secret", "read the Secret `NAME` through the API into .Secrets.NAME.KEY (repeatable; watched with --watch)")
	fs.String(&o.namespace, "namespace", "", "of --configmap and --secret: the `NAMESPACE` (default: the pod's own)")
	fs.String(&o.kubeconfig, "kubeconfig", "", "use `FILE` instead of the pod's service account")
	fs.String(&o.sa, "service-account-dir", kube.ServiceAccountDir, "the pod's service account `DIR` (token, ca.crt, namespace)")
	fs.Duration(&o.silence, "watch-silence", 90*time.Second, "with --watch: an API watch that says nothing (no event, no bookmark) for `DURATION` is started again, and /healthz fails while one is down longer")
}

func (o *objects) used() bool { return len(o.configMaps)+len(o.secrets) > 0 }

// prepare makes the client and one watch per object.
func (o *objects) prepare(env *cli.Env) error {
	if !o.used() {
		if o.namespace != "" || o.kubeconfig != "" {
			return errors.New("--namespace and --kubeconfig go with --configmap or --secret")
		}
		return nil
	}
	c, err := kube.Connect(o.kubeconfig, o.sa, env.LookupEnv, env.Secrets)
	if err != nil {
		return err
	}
	o.ns = o.namespace
	if o.ns == "" {
		o.ns = c.Namespace()
	}
	if o.ns == "" {
		o.ns = "default"
	}
	for _, k := range []struct {
		kind  string
		names []string
	}{{"configmap", o.configMaps}, {"secret", o.secrets}} {
		for _, n := range k.names {
			o.watches = append(o.watches, &kube.ObjectWatch{
				Client: c, Collection: "/api/v1/namespaces/" + o.ns + "/" + k.kind + "s", Kind: k.kind, Name: n,
				Silence: o.silence, Log: env.Log,
			})
		}
	}
	return nil
}

// sync lists every object once.
func (o *objects) sync(ctx context.Context) error {
	for _, w := range o.watches {
		if err := w.Sync(ctx); err != nil {
			return err
		}
	}
	return nil
}

// sources are the watches, for the engine.
func (o *objects) sources() []keep.Source {
	var out []keep.Source
	for _, w := range o.watches {
		out = append(out, w)
	}
	return out
}

// data is .ConfigMaps and .Secrets from the objects' latest state; a
// Secret's values are secrets in every output path.
func (o *objects) data(env *cli.Env) (map[string]any, map[string]any, error) {
	cms, secs := map[string]any{}, map[string]any{}
	for _, w := range o.watches {
		obj, ok := w.Object()
		if !ok {
			return nil, nil, &apiError{fmt.Errorf("%s %s not found in namespace %s", w.Kind, w.Name, o.ns)}
		}
		keys := map[string]any{}
		if w.Kind == "configmap" {
			for k, v := range asMap(obj["data"]) {
				keys[k] = v
			}
			for k, v := range asMap(obj["binaryData"]) {
				b, err := base64.StdEncoding.DecodeString(fmt.Sprint(v))
				if err != nil {
					return nil, nil, fmt.Errorf("configmap %s: binaryData %s: %v", w.Name, k, err)
				}
				keys[k] = string(b)
			}
			cms[w.Name] = keys
			continue
		}
		for k, v := range asMap(obj["data"]) {
			b, err := base64.StdEncoding.DecodeString(fmt.Sprint(v))
			if err != nil {
				return nil, nil, fmt.Errorf("secret %s: %s: %v", w.Name, k, err)
			}
			env.Secrets.Add(string(b))
			keys[k] = string(b)
		}
		secs[w.Name] = keys
	}
	return cms, secs, nil
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

// apiError is what the API server said (an object not there): not bad
// usage, so not exit 2.
type apiError struct{ err error }

func (e *apiError) Error() string { return e.err.Error() }
func (e *apiError) Unwrap() error { return e.err }
