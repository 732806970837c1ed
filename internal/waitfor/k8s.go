package waitfor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/cenkalti/backoff/v4"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/kube"
	"github.com/initbox/initbox/internal/neterr"
	"github.com/initbox/initbox/internal/retry"
)

// k8sKind waits on Kubernetes objects through the API, as kubectl wait
// does: a Service's ready endpoints, a Job's completion, a Pod's
// readiness, any condition or field of any resource.
// The k8s kind, registered in the table (register).
var _ = register(&kind{
	name: "k8s", aliases: []string{"kube", "kubernetes"}, rank: 90, noun: "Kubernetes objects",
	usage: "k8s TYPE NAME", urlForm: "k8s:TYPE/NAME",
	help: `a Kubernetes object, through the API with the pod's service account,
		watched: endpoints SERVICE (--min-ready ready endpoints), job NAME (Complete;
		Failed ends the wait), pod NAME or pod -l SELECTOR (Ready), or any
		RESOURCE/NAME with --for condition=NAME[=VALUE], jsonpath='{.path}'=VALUE,
		create. A 403 ends the wait, naming the Role rule to add.`,
	more: `MISSING OBJECTS
A k8s object that is not there is waited for (--if-missing wait). A Job with
ttlSecondsAfterFinished is deleted once it finishes, so a pod that starts (or
restarts) after that would wait forever: --if-missing ready counts a missing
object as ready — use it only when the object is created before the pod can
start (a Helm pre-install hook, a Job applied first). --if-missing fail ends
the wait at once (exit 1) when it is missing.`,
	examples: []string{"k8s deployments.apps/api --for condition=Available -n backend"},
	schemes:  []string{"k8s"},
	pairs:    true,
	options:  func() kindOptions { return &k8sOptions{} },
})

type k8sOptions struct {
	forCond, selector     string
	ifMissing             string
	minReady              int
	namespace, kubeconfig string
	serviceAccount        string
	kube                  *kube.Client
	kubeErr               error
	kubeOnce              sync.Once
}

func (k *k8sOptions) flags(fs *cli.FlagSet) {
	fs.String(&k.forCond, "for", "", "`condition=NAME[=VALUE]`, jsonpath='{.path}'=VALUE or create (kubectl wait's)")
	fs.String(&k.ifMissing, "if-missing", "wait", "when no object is there: `wait` for it, count it as ready, or fail (see MISSING OBJECTS)")
	fs.String(&k.selector, "selector", "", "wait on the objects matching the label `SELECTOR`")
	fs.Alias("l", "selector")
	fs.Int(&k.minReady, "min-ready", 1, "ready when at least `N` endpoints (or selected objects) are")
	fs.String(&k.namespace, "namespace", "", "the `NAMESPACE` (default: the pod's own)")
	fs.Alias("n", "namespace")
	fs.String(&k.kubeconfig, "kubeconfig", "", "use `FILE` instead of the pod's service account")
	fs.String(&k.serviceAccount, "service-account-dir", kube.ServiceAccountDir, "the pod's service account `DIR` (token, ca.crt, namespace)")
}

// waiter is a probe that waits by itself (a watch) instead of being
// polled: Wait returns nil when ready, a retry.Permanent error when it
// never will be, or ctx's error; report is told why it is not ready yet.
type waiter interface {
	Wait(ctx context.Context, report func(reason string)) error
}

// k8sTest is what makes an object ready.
type k8sTest struct {
	kind  string // endpoints, job, condition, jsonpath, create
	key   string // the condition's type, or the JSON path
	value string // the wanted status or value ("" for jsonpath: present)
}

type k8sProbe struct {
	o        *options
	k        *k8sOptions
	client   *kube.Client
	resName  string // as written: job, deployments.apps, widgets.example.com
	name     string
	selector string
	ns       string
	test     k8sTest
	need     int
}

func (k *k8sOptions) probe(o *options, target string) (probe, error) {
	typ, name, _ := strings.Cut(target, "/")
	typ = strings.ToLower(typ)
	p := &k8sProbe{o: o, k: k, resName: typ, name: name, selector: k.selector, need: k.minReady}
	switch {
	case typ == "":
		return nil, errors.New("want RESOURCE/NAME, RESOURCE NAME, or RESOURCE with -l SELECTOR")
	case name == "" && k.selector == "":
		return nil, fmt.Errorf("%s: give a NAME or -l SELECTOR", typ)
	case name != "" && k.selector != "":
		return nil, fmt.Errorf("%s/%s: a NAME and -l SELECTOR exclude each other", typ, name)
	case p.need < 1:
		return nil, fmt.Errorf("invalid value %d for --min-ready: want 1 or more", p.need)
	case k.ifMissing != "wait" && k.ifMissing != "ready" && k.ifMissing != "fail":
		return nil, fmt.Errorf("invalid value %q for --if-missing: want wait, ready or fail", k.ifMissing)
	case k.ifMissing != "wait" && k.forCond == "create":
		return nil, errors.New("--for create waits for the object to exist: --if-missing does not apply")
	}
	var err error
	switch typ {
	case "endpoints", "endpoint", "ep":
		if name == "" {
			return nil, errors.New("endpoints: give the Service's name")
		}
		if k.forCond != "" {
			return nil, errors.New("endpoints: --for does not apply; ready endpoints are counted (--min-ready)")
		}
		p.resName, p.test = "endpointslices", k8sTest{kind: "endpoints"}
	default:
		if p.test, err = parseFor(k.forCond, typ); err != nil {
			return nil, err
		}
	}
	if p.client, err = k.kubeClient(o.env); err != nil {
		return nil, err
	}
	p.ns = k.namespace
	if p.ns == "" {
		p.ns = p.client.Namespace()
	}
	if p.ns == "" {
		p.ns = "default"
	}
	return p, nil
}

// parseFor reads --for as kubectl wait writes it, with a default for the
// types whose readiness is obvious.
func parseFor(f, typ string) (k8sTest, error) {
	if f == "" {
		switch typ {
		case "job", "jobs", "job.batch", "jobs.batch":
			return k8sTest{kind: "job"}, nil
		case "pod", "pods", "po":
			return k8sTest{kind: "condition", key: "Ready", value: "True"}, nil
		}
		return k8sTest{}, fmt.Errorf("%s: say what to wait for: --for condition=NAME[=VALUE], --for jsonpath='{.path}'=VALUE or --for create", typ)
	}
	if f == "create" {
		return k8sTest{kind: "create"}, nil
	}
	if rest, ok := strings.CutPrefix(f, "condition="); ok {
		cond, val, ok := strings.Cut(rest, "=")
		if !ok {
			val = "True"
		}
		if cond == "" {
			return k8sTest{}, fmt.Errorf("invalid --for %q: no condition", f)
		}
		return k8sTest{kind: "condition", key: cond, value: val}, nil
	}
	if rest, ok := strings.CutPrefix(f, "jsonpath="); ok {
		// Without a shell to strip them, quotes around the path (as
		// kubectl's documentation writes it) arrive here: drop them.
		if len(rest) > 0 && (rest[0] == '\'' || rest[0] == '"') {
			if end := strings.IndexByte(rest[1:], rest[0]); end >= 0 {
				rest = rest[1:end+1] + rest[end+2:]
			}
		}
		path, val := rest, ""
		if i := strings.Index(rest, "}="); i >= 0 {
			path, val = rest[:i+1], rest[i+2:]
		}
		if !strings.HasPrefix(path, "{.") || !strings.HasSuffix(path, "}") {
			return k8sTest{}, fmt.Errorf("invalid --for %q: want jsonpath='{.status.phase}'=VALUE", f)
		}
		if _, err := splitPath(path[2 : len(path)-1]); err != nil {
			return k8sTest{}, fmt.Errorf("invalid --for %q: %w", f, err)
		}
		return k8sTest{kind: "jsonpath", key: path[2 : len(path)-1], value: strings.Trim(val, `'"`)}, nil
	}
	return k8sTest{}, fmt.Errorf("invalid --for %q: want condition=NAME[=VALUE], jsonpath='{.path}'=VALUE or create", f)
}

// pathPart is one step of a JSON path: a field, or an index into a list.
type pathPart struct {
	field string
	index int // -1: none
}

// splitPath reads a.b[0].c — the subset of JSONPath a readiness needs.
func splitPath(p string) ([]pathPart, error) {
	var parts []pathPart
	for _, seg := range strings.Split(p, ".") {
		field, idx, hasIdx := strings.Cut(seg, "[")
		part := pathPart{field: field, index: -1}
		if hasIdx {
			n, err := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			if err != nil || !strings.HasSuffix(idx, "]") || n < 0 {
				return nil, fmt.Errorf("unsupported path segment %q (fields and [N] indexes only)", seg)
			}
			part.index = n
		}
		if field == "" && !hasIdx {
			return nil, fmt.Errorf("empty path segment in %q", p)
		}
		parts = append(parts, part)
	}
	return parts, nil
}

func lookupPath(obj any, path string) (any, bool) {
	parts, _ := splitPath(path)
	cur := obj
	for _, p := range parts {
		if p.field != "" {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[p.field]; !ok {
				return nil, false
			}
		}
		if p.index >= 0 {
			l, ok := cur.([]any)
			if !ok || p.index >= len(l) {
				return nil, false
			}
			cur = l[p.index]
		}
	}
	return cur, true
}

func (p *k8sProbe) Check(ctx context.Context) error { return p.Wait(ctx, nil) }

func (p *k8sProbe) query() url.Values {
	q := url.Values{}
	switch {
	case p.test.kind == "endpoints":
		q.Set("labelSelector", "kubernetes.io/service-name="+p.name)
	case p.name != "":
		q.Set("fieldSelector", "metadata.name="+p.name)
	default:
		q.Set("labelSelector", p.selector)
	}
	return q
}

// Wait lists the objects, then watches them from the list's
// resourceVersion, judging after every event; a watch that ends is resumed
// from the last version seen, one too old (410) re-lists. Failures are
// retried on the probe schedule; watches that keep failing while lists
// work turn into polling on that schedule.
func (p *k8sProbe) Wait(ctx context.Context, report func(string)) error {
	b := retry.Probe
	b.Interval, b.MaxInterval = p.o.interval, p.o.maxInterval
	bo := b.BackOff(backoff.SystemClock)
	var (
		res        kube.Resource
		resolved   bool
		objs       map[string]map[string]any
		rv         string
		watchFails int
		last       error
	)
	say := func(err error) {
		last = err
		if report != nil {
			report(err.Error())
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return &retry.StoppedError{Cause: context.Cause(ctx), Last: last}
		}
		var err error
		switch {
		case !resolved:
			if res, err = p.client.Resolve(ctx, p.resName); err == nil {
				resolved = true
				continue
			}
		case rv == "" || watchFails >= 3:
			objs, rv, err = p.list(ctx, res)
			if err == nil {
				why, done := p.judge(objs)
				if done != nil || why == "" {
					return done
				}
				say(errors.New(why))
				if watchFails < 3 {
					continue // watch from here
				}
				err = nil
			}
		default:
			err = p.watch(ctx, res, objs, &rv, say)
			switch {
			case err == nil || errors.Is(err, errReady):
				return nil
			case retry.IsPermanent(err):
				return err
			case kube.Gone(err):
				say(errors.New("the watch's version expired; listing again"))
				rv = "" // re-list
				continue
			case errors.Is(err, io.EOF):
				continue // the server ended the watch: resume
			case ctx.Err() == nil:
				watchFails++
			}
		}
		if err != nil {
			if perm := p.permanent(ctx, err, res); perm != nil {
				return perm
			}
			if ctx.Err() == nil {
				say(reason(err))
			}
		}
		if retry.Sleep(ctx, bo.NextBackOff()) != nil {
			continue
		}
	}
}

var errReady = errors.New("ready")

func reason(err error) error {
	var se *kube.StatusError
	if errors.As(err, &se) {
		return se
	}
	return neterr.Reason(err)
}

// permanent turns the errors retrying cannot fix into retry.Permanent: a
// 403 from a ready server names the Role rule to add; a 401 with a token
// that has not changed says the token is refused.
func (p *k8sProbe) permanent(ctx context.Context, err error, res kube.Resource) error {
	var se *kube.StatusError
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code {
	case http.StatusForbidden:
		if !p.client.Ready(ctx) {
			return nil // a server still starting: its authorizer is not synced
		}
		where := "a Role in namespace " + p.ns
		if !res.Namespaced && res.Name != "" {
			where = "a ClusterRole"
		}
		group := res.Group
		rule := fmt.Sprintf(`{apiGroups: [%q], resources: [%q], verbs: ["get", "list", "watch"]}`, group, res.Name)
		return retry.Permanent(fmt.Errorf("forbidden: the service account needs this rule in %s: %s (%s)", where, rule, se.Message))
	case http.StatusUnauthorized:
		if !p.client.TokenChanged(err) {
			return retry.Permanent(fmt.Errorf("unauthorized: the API server refused the token (%s)", se.Message))
		}
	}
	return nil
}

// list reads the objects and the collection's resourceVersion.
func (p *k8sProbe) list(ctx context.Context, res kube.Resource) (map[string]map[string]any, string, error) {
	var list struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Items []map[string]any `json:"items"`
	}
	if err := p.client.Get(ctx, res.Path(p.ns), p.query(), &list); err != nil {
		return nil, "", err
	}
	objs := map[string]map[string]any{}
	for _, it := range list.Items {
		objs[objName(it)] = it
	}
	return objs, list.Metadata.ResourceVersion, nil
}

// watch follows events until the objects are ready (errReady), one can
// never be (permanent), or the watch ends (its error; io.EOF when the
// server closed it).
func (p *k8sProbe) watch(ctx context.Context, res kube.Resource, objs map[string]map[string]any, rv *string, say func(error)) error {
	w, err := p.client.Watch(ctx, res.Path(p.ns), p.query(), *rv)
	if err != nil {
		return err
	}
	defer w.Close()
	stop := context.AfterFunc(ctx, func() { w.Close() })
	defer stop()
	for {
		ev, err := w.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if v := resourceVersion(ev.Object); v != "" {
			*rv = v
		}
		switch ev.Type {
		case "BOOKMARK":
			continue
		case "DELETED":
			delete(objs, objName(ev.Object))
		default:
			objs[objName(ev.Object)] = ev.Object
		}
		why, done := p.judge(objs)
		if done != nil {
			return done
		}
		if why == "" {
			return errReady
		}
		say(errors.New(why))
	}
}

func objName(o map[string]any) string {
	m, _ := o["metadata"].(map[string]any)
	n, _ := m["name"].(string)
	return n
}

func resourceVersion(o map[string]any) string {
	m, _ := o["metadata"].(map[string]any)
	v, _ := m["resourceVersion"].(string)
	return v
}

// judge says whether objs satisfy the test: ("", nil) ready; (why, nil)
// not yet; a permanent error when they never will be (a failed Job).
func (p *k8sProbe) judge(objs map[string]map[string]any) (string, error) {
	what := p.resName
	if p.name != "" {
		what += "/" + p.name
	}
	if p.test.kind == "endpoints" {
		n := 0
		for _, o := range objs {
			eps, _ := o["endpoints"].([]any)
			for _, e := range eps {
				em, _ := e.(map[string]any)
				cond, _ := em["conditions"].(map[string]any)
				if ready, ok := cond["ready"].(bool); !ok || ready {
					n++ // unknown readiness counts as ready, as the API says
				}
			}
		}
		if n >= p.need {
			return "", nil
		}
		return fmt.Sprintf("service %s has %d ready endpoints, want %d", p.name, n, p.need), nil
	}
	if len(objs) == 0 {
		missing := what + " not found"
		if p.name == "" {
			missing = fmt.Sprintf("no %s match %s", p.resName, p.selector)
		}
		switch p.k.ifMissing {
		case "ready":
			// A Job that finished and was removed (ttlSecondsAfterFinished)
			// looks exactly like this; the user said that is what it means.
			p.o.env.Log.Info("not found: counted as ready (--if-missing ready)", "target", "k8s "+what)
			return "", nil
		case "fail":
			return "", retry.Permanent(errors.New(missing + " (--if-missing fail)"))
		}
		return missing, nil
	}
	good := 0
	var why string
	for _, o := range objs {
		ok, w, perm := p.test.holds(o)
		if perm != nil {
			return "", retry.Permanent(perm)
		}
		if ok {
			good++
		} else if why == "" {
			why = w
			if p.name == "" {
				why = p.resName + "/" + objName(o) + ": " + w
			}
		}
	}
	need := p.need
	if p.name != "" {
		need = 1
	}
	if good >= need {
		return "", nil
	}
	if p.name == "" {
		return fmt.Sprintf("%d of %d %s ready, want %d (%s)", good, len(objs), p.resName, need, why), nil
	}
	return why, nil
}

// holds tests one object.
func (t k8sTest) holds(o map[string]any) (bool, string, error) {
	switch t.kind {
	case "create":
		return true, "", nil
	case "job":
		if st, r, m := condition(o, "Failed"); strings.EqualFold(st, "True") {
			return false, "", fmt.Errorf("job %s failed: %s", objName(o), join(r, m))
		}
		if st, _, _ := condition(o, "Complete"); strings.EqualFold(st, "True") {
			return true, "", nil
		}
		return false, "not complete yet", nil
	case "condition":
		st, r, m := condition(o, t.key)
		if strings.EqualFold(st, t.value) {
			return true, "", nil
		}
		if st == "" {
			return false, "no condition " + t.key + " yet", nil
		}
		return false, fmt.Sprintf("condition %s is %s%s", t.key, st, paren(join(r, m))), nil
	case "jsonpath":
		v, ok := lookupPath(o, t.key)
		if !ok {
			return false, "{." + t.key + "} is not set", nil
		}
		s := fmt.Sprint(v)
		if f, ok := v.(float64); ok {
			s = strconv.FormatFloat(f, 'f', -1, 64)
		}
		if t.value == "" || s == t.value {
			return true, "", nil
		}
		return false, fmt.Sprintf("{.%s} is %s, want %s", t.key, s, t.value), nil
	}
	return false, "", fmt.Errorf("unknown test %q", t.kind)
}

// condition finds status.conditions[type=name] (case-insensitively, as
// kubectl wait does) and returns its status, reason and message.
func condition(o map[string]any, name string) (string, string, string) {
	st, _ := o["status"].(map[string]any)
	conds, _ := st["conditions"].([]any)
	for _, c := range conds {
		cm, _ := c.(map[string]any)
		if t, _ := cm["type"].(string); strings.EqualFold(t, name) {
			s, _ := cm["status"].(string)
			r, _ := cm["reason"].(string)
			m, _ := cm["message"].(string)
			return s, r, m
		}
	}
	return "", "", ""
}

func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + ": " + b
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// kubeClient loads the configuration once: --kubeconfig when given, else
// the pod's service account, else $KUBECONFIG.
func (k *k8sOptions) kubeClient(env *cli.Env) (*kube.Client, error) {
	k.kubeOnce.Do(func() { k.kube, k.kubeErr = kube.Connect(k.kubeconfig, k.serviceAccount, env.LookupEnv, env.Secrets) })
	return k.kube, k.kubeErr
}
