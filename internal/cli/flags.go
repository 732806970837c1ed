package cli

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FlagSet is one applet's flags. Flags are GNU style: --name value,
// --name=value, -n value, -nvalue, clustered one-letter booleans (-qv is
// -q -v); they may follow positional arguments, and "--" ends them. A word
// such as -1s or -5 is a negative number, an argument (no flag starts with
// a digit), unless it is a flag's value. Go's single-dash spelling of a long
// flag (-timeout 5s) is read too.
//
// Every flag has an environment twin that supplies its value when the flag
// is not given: INITBOX_<APPLET>_<FLAG> (dashes become underscores), or
// INITBOX_<FLAG> for the flags every applet shares with one meaning
// (--timeout, --log-format, --quiet, --verbose, --termination-log). Inside
// initbox run every step shares one environment, so an applet's own flag
// must not be set by another applet's variable.
type FlagSet struct {
	applet string
	flags  []*flagInfo
	byName map[string]*flagInfo
	// shared marks the flags registered next as every applet's.
	shared bool
	// owners are the parts of the applet (waitfor's kinds) that take the
	// flags registered next; see Group.
	owners []string
	// dashdash is the index in parse's result of the first argument after
	// a "--", or -1.
	dashdash int
}

type flagInfo struct {
	name, short, env, usage, def string
	value                        flag.Value
	repeat, isBool, shared       bool
	// parts: who registered the flag, when a Group did (a flag two
	// groups register is one flag that sets both values).
	parts []part
	// given: on the command line (or through the twin); fromEnv: by the twin.
	given, fromEnv bool
}

func newFlagSet(applet string) *FlagSet {
	return &FlagSet{applet: applet, byName: map[string]*flagInfo{}, dashdash: -1}
}

// EnvName is the environment twin of this applet's flag name.
func (f *FlagSet) EnvName(flagName string) string {
	if fi := f.byName[flagName]; fi != nil {
		return fi.env
	}
	return envName(f.applet, flagName)
}

func envName(applet, flagName string) string {
	up := func(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }
	if applet == "" {
		return "INITBOX_" + up(flagName)
	}
	return "INITBOX_" + up(applet) + "_" + up(flagName)
}

type part struct {
	owners []string
	usage  string
	value  flag.Value
}

// Group makes the flags registered next belong to owners (waitfor's kinds:
// "http"), until the next Group; Group() ends it. A flag several groups
// register (--query for postgres and for mysql) is one flag: its value goes
// to each, and its help says what it does for each. Owners tells, after
// parsing, whom a flag that was given is for.
func (f *FlagSet) Group(owners ...string) { f.owners = owners }

// Owners are the groups that registered the flag; none for a flag of the
// applet as a whole.
func (f *FlagSet) Owners(name string) []string {
	fi := f.byName[name]
	if fi == nil {
		return nil
	}
	var out []string
	for _, p := range fi.parts {
		out = append(out, p.owners...)
	}
	return out
}

// fanout is the value of a flag several groups registered.
type fanout struct {
	f  *flagInfo
	vs []flag.Value
}

func (m *fanout) Set(v string) error {
	for _, x := range m.vs {
		if err := x.Set(v); err != nil {
			return err
		}
	}
	return nil
}
func (m *fanout) String() string     { return m.vs[0].String() }
func (m *fanout) IsBoolFlag() bool   { return m.f.isBool }
func (m *fanout) IsRepeatable() bool { return m.f.repeat }

// Var registers a flag with a custom value. def is the default as shown in help.
func (f *FlagSet) Var(v flag.Value, name, def, usage string) {
	b, ok := v.(interface{ IsBoolFlag() bool })
	isBool := ok && b.IsBoolFlag()
	r, ok := v.(interface{ IsRepeatable() bool })
	repeat := ok && r.IsRepeatable()
	if old := f.byName[name]; old != nil {
		if len(f.owners) == 0 || len(old.parts) == 0 || old.isBool != isBool || old.repeat != repeat || old.def != def {
			panic("cli: flag --" + name + " registered twice")
		}
		m, ok := old.value.(*fanout)
		if !ok {
			m = &fanout{f: old, vs: []flag.Value{old.value}}
			old.value = m
		}
		m.vs = append(m.vs, v)
		old.parts = append(old.parts, part{owners: f.owners, usage: usage, value: v})
		old.usage = partsUsage(old.parts)
		return
	}
	fi := &flagInfo{name: name, usage: usage, def: def, value: v, repeat: repeat, isBool: isBool, shared: f.shared}
	if len(f.owners) > 0 {
		fi.parts = []part{{owners: f.owners, usage: usage, value: v}}
		fi.usage = partsUsage(fi.parts)
	}
	fi.env = envName(f.applet, name)
	if f.shared {
		fi.env = envName("", name)
	}
	f.flags = append(f.flags, fi)
	f.byName[name] = fi
}

// partsUsage is the help of a flag registered by groups: "http: ready
// `STATUSES`…", or "dns: …; tcp: …", with the owners of one text together.
func partsUsage(parts []part) string {
	var texts []string
	owners := map[string][]string{}
	for _, p := range parts {
		if _, ok := owners[p.usage]; !ok {
			texts = append(texts, p.usage)
		}
		owners[p.usage] = append(owners[p.usage], p.owners...)
	}
	var out []string
	for _, t := range texts {
		out = append(out, strings.Join(owners[t], ", ")+": "+t)
	}
	return strings.Join(out, "; ")
}

// Alias adds a one-letter alias (-v for --verbose).
func (f *FlagSet) Alias(short, name string) {
	fi := f.byName[name]
	if fi == nil || len(short) != 1 {
		panic("cli: bad alias -" + short + " for --" + name)
	}
	if fi.short == short {
		return // a second group registering the flag
	}
	for _, o := range f.flags {
		if o.short == short {
			panic("cli: alias -" + short + " registered twice")
		}
	}
	fi.short = short
}

// String registers a string flag.
func (f *FlagSet) String(p *string, name, def, usage string) {
	*p = def
	f.Var((*stringValue)(p), name, def, usage)
}

// Bool registers a boolean flag, false by default.
func (f *FlagSet) Bool(p *bool, name, usage string) {
	f.Var((*boolValue)(p), name, "", usage)
}

// Int registers an integer flag.
func (f *FlagSet) Int(p *int, name string, def int, usage string) {
	*p = def
	f.Var((*intValue)(p), name, strconv.Itoa(def), usage)
}

// Duration registers a duration flag ("30s", "5m", "1h30m", "90d"; "0"
// allowed; negative refused).
func (f *FlagSet) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	f.Var((*durationValue)(p), name, FormatDuration(def), usage)
}

// Strings registers a repeatable flag; its environment twin holds one value
// per line.
func (f *FlagSet) Strings(p *[]string, name, usage string) {
	f.Var((*stringList)(p), name, "", usage)
}

// Changed tells whether the named flag was given, on the command line or
// through its environment twin.
func (f *FlagSet) Changed(name string) bool {
	fi := f.byName[name]
	return fi != nil && fi.given
}

// Given lists the flags given (on the command line or by their twin), in
// the order they were registered, as "--name" or "$TWIN".
func (f *FlagSet) Given() []Given {
	var out []Given
	for _, fi := range f.flags {
		if fi.given {
			out = append(out, Given{Name: fi.name, Env: fi.env, FromEnv: fi.fromEnv})
		}
	}
	return out
}

// Misplaced is the first flag given whose groups (Group) are none of
// chosen — a flag of a kind the command line did not choose, which would
// be ignored — with those groups; ok is false when there is none.
func (f *FlagSet) Misplaced(chosen ...string) (g Given, owners []string, ok bool) {
	for _, g := range f.Given() {
		owners := f.Owners(g.Name)
		if len(owners) > 0 && !slices.ContainsFunc(owners, func(o string) bool { return slices.Contains(chosen, o) }) {
			return g, owners, true
		}
	}
	return Given{}, nil, false
}

// Given is one flag that was given.
type Given struct {
	Name, Env string
	FromEnv   bool // by its environment twin, not the command line
}

// String is how the flag was given, for messages: --name or $TWIN.
func (g Given) String() string {
	if g.FromEnv {
		return "$" + g.Env + " (--" + g.Name + ")"
	}
	return "--" + g.Name
}

// parse reads args and then the environment twins of the flags not given.
// It returns the positional arguments, the first error, and warnings (a
// flat twin that is no longer read). It reads every word even after an
// error, so what it could parse (where the termination log goes) is set.
func (f *FlagSet) parse(args []string, lookupEnv func(string) (string, bool)) (pos []string, warnings []string, err error) {
	f.dashdash = -1
	keep := func(e error) {
		if err == nil {
			err = e
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			f.dashdash = len(pos)
			pos = append(pos, args[i+1:]...)
			i = len(args)
			continue
		case len(a) < 2 || a[0] != '-' || isNumberish(a[1:]):
			pos = append(pos, a)
			continue
		}
		// next hands out the following word as a flag's value.
		next := func() (string, bool) {
			if i+1 < len(args) {
				i++
				return args[i], true
			}
			return "", false
		}
		if strings.HasPrefix(a, "--") {
			name, val, hasVal := strings.Cut(a[2:], "=")
			keep(f.setLong("--"+name, name, val, hasVal, next))
			continue
		}
		name, val, hasVal := strings.Cut(a[1:], "=")
		if len(name) > 1 && f.byName[name] != nil {
			keep(f.setLong("-"+name, name, val, hasVal, next))
			continue
		}
		keep(f.setCluster(a, next))
	}
	for _, fi := range f.flags {
		if fi.given {
			continue
		}
		if !fi.shared {
			if v, ok := lookupEnv(envName("", fi.name)); ok && v != "" {
				if _, own := lookupEnv(fi.env); !own {
					warnings = append(warnings, fmt.Sprintf("$%s is not read for %s: name it $%s (only the flags every applet shares keep a flat name)", envName("", fi.name), f.applet, fi.env))
				}
			}
		}
		v, ok := lookupEnv(fi.env)
		if !ok || v == "" {
			continue
		}
		vals := []string{v}
		if fi.repeat {
			vals = splitLines(v)
		}
		for _, one := range vals {
			if e := fi.value.Set(one); e != nil {
				keep(fmt.Errorf("invalid value %q for $%s (the twin of --%s): %v", one, fi.env, fi.name, e))
				break
			}
		}
		fi.given, fi.fromEnv = true, true
	}
	return pos, warnings, err
}

// setLong sets the flag name spelt as word (--name or -name).
func (f *FlagSet) setLong(word, name, val string, hasVal bool, next func() (string, bool)) error {
	fi := f.byName[name]
	if fi == nil {
		return fmt.Errorf("unknown flag %s", word)
	}
	if fi.isBool {
		if !hasVal {
			val = "true"
		}
		return f.set(fi, word, val)
	}
	if !hasVal {
		var ok bool
		if val, ok = next(); !ok {
			return fmt.Errorf("%s needs a value", word)
		}
	}
	return f.set(fi, word, val)
}

// setCluster reads -x, -xVALUE, -x VALUE and -qv (one-letter booleans in
// a row; a one-letter flag that takes a value ends the cluster with it).
func (f *FlagSet) setCluster(word string, next func() (string, bool)) error {
	letters := word[1:]
	for j := 0; j < len(letters); j++ {
		short := string(letters[j])
		fi := f.byShort(short)
		if fi == nil {
			if j == 0 && len(letters) > 1 {
				return fmt.Errorf("unknown flag %s", word)
			}
			if len(letters) > 1 {
				return fmt.Errorf("unknown flag -%s (in %s)", short, word)
			}
			return fmt.Errorf("unknown flag -%s", short)
		}
		if fi.isBool {
			if rest := letters[j+1:]; strings.HasPrefix(rest, "=") {
				return f.set(fi, "-"+short, rest[1:])
			}
			if err := f.set(fi, "-"+short, "true"); err != nil {
				return err
			}
			continue
		}
		val := strings.TrimPrefix(letters[j+1:], "=")
		if j+1 == len(letters) {
			var ok bool
			if val, ok = next(); !ok {
				return fmt.Errorf("-%s needs a value", short)
			}
		}
		return f.set(fi, "-"+short, val)
	}
	return nil
}

func (f *FlagSet) byShort(short string) *flagInfo {
	for _, fi := range f.flags {
		if fi.short == short {
			return fi
		}
	}
	return nil
}

func (f *FlagSet) set(fi *flagInfo, word, val string) error {
	if err := fi.value.Set(val); err != nil {
		return fmt.Errorf("invalid value %q for %s: %v", val, word, err)
	}
	fi.given = true
	return nil
}

// isNumberish: after a dash, a digit or a dot starts a negative number.
func isNumberish(s string) bool { return s[0] >= '0' && s[0] <= '9' || s[0] == '.' }

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// usage writes the flag table for help.
func (f *FlagSet) usage(w io.Writer) {
	type row struct{ left, right string }
	var rows []row
	width := 0
	for _, fi := range f.flags {
		name, usage := unquoteUsage(fi)
		left := "--" + fi.name
		if fi.short != "" {
			left = "-" + fi.short + ", " + left
		}
		if !fi.isBool && name != "" {
			left += " " + name
		}
		right := usage
		if fi.def != "" && fi.def != "0" && fi.def != `""` || (fi.def == "0" && isDuration(fi.value)) {
			right += fmt.Sprintf(" (default %s)", fi.def)
		}
		right += " [$" + fi.env + "]"
		if len(left) > width {
			width = len(left)
		}
		rows = append(rows, row{left, right})
	}
	if width > 30 {
		width = 30
	}
	for _, r := range rows {
		if len(r.left) > width {
			fmt.Fprintf(w, "  %s\n  %*s  %s\n", r.left, width, "", r.right)
			continue
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, r.left, r.right)
	}
}

// unquoteUsage takes the `NAME` of a flag's usage as its value's name (as
// the flag package does): "give up after `DURATION`" shows
// "--timeout DURATION  give up after DURATION".
func unquoteUsage(fi *flagInfo) (name, usage string) {
	usage = fi.usage
	if i := strings.IndexByte(usage, '`'); i >= 0 {
		if j := strings.IndexByte(usage[i+1:], '`'); j >= 0 {
			name = usage[i+1 : i+1+j]
			return name, usage[:i] + name + usage[i+1+j+1:]
		}
	}
	if fi.isBool {
		return "", usage
	}
	return "value", usage
}

func isDuration(v flag.Value) bool { _, ok := v.(*durationValue); return ok }

type stringValue string

func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
func (s *stringValue) String() string     { return string(*s) }

type boolValue bool

func (b *boolValue) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	*b = boolValue(x)
	return nil
}
func (b *boolValue) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *boolValue) IsBoolFlag() bool { return true }

type intValue int

func (i *intValue) Set(v string) error {
	x, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("not a whole number")
	}
	*i = intValue(x)
	return nil
}
func (i *intValue) String() string { return strconv.Itoa(int(*i)) }

type durationValue time.Duration

func (d *durationValue) Set(v string) error {
	x, err := ParseDuration(v)
	if err != nil {
		return err
	}
	*d = durationValue(x)
	return nil
}
func (d *durationValue) String() string { return FormatDuration(time.Duration(*d)) }

// ParseDuration is the one duration parser of every applet: a Go duration
// ("500ms", "30s", "1h30m") or whole days ("90d"); a bare "0" means zero.
// Negative durations are refused.
func ParseDuration(v string) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	if strings.HasPrefix(strings.TrimSpace(v), "-") {
		return 0, fmt.Errorf("negative duration")
	}
	if d, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > maxDays {
			return 0, fmt.Errorf("not a duration (whole days are 1d to %dd)", maxDays)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	x, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("not a duration (use a number with a unit: 500ms, 30s, 5m, 1h30m, 90d)")
	}
	return x, nil
}

// maxDays keeps a duration in days well inside time.Duration (292 years).
const maxDays = 100 * 365

// FormatDuration writes d as ParseDuration reads it: "0", "90d" for whole
// days of at least one, otherwise Go's form.
func FormatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

type stringList []string

func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) IsRepeatable() bool { return true }

// Bytes registers a size flag: plain bytes or a number with a unit, decimal
// (KB, MB, GB, TB) or binary (KiB, MiB, GiB, TiB).
func (f *FlagSet) Bytes(p *int64, name string, def int64, usage string) {
	*p = def
	f.Var((*bytesValue)(p), name, FormatBytes(def), usage)
}

type bytesValue int64

func (b *bytesValue) Set(v string) error {
	n, err := ParseBytes(v)
	if err != nil {
		return err
	}
	*b = bytesValue(n)
	return nil
}
func (b *bytesValue) String() string { return FormatBytes(int64(*b)) }

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// ParseBytes reads "512MiB", "1GiB", "100KB", "1.5GB" or "4096".
func ParseBytes(v string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	bad := fmt.Errorf("not a size (use bytes or a unit: 100KB, 512MiB, 1GiB)")
	if s == "" {
		return 0, bad
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > (1<<62)/mult {
			return 0, bad
		}
		return n * mult, nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x < 0 || x*float64(mult) > 1<<62 {
		return 0, bad
	}
	return int64(x * float64(mult)), nil
}

// FormatBytes writes n in the largest binary unit that divides it evenly.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

// HumanBytes writes n approximately, for progress lines: "12.3 MiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// NewFlagSet is an empty FlagSet for applet, for tests that build one
// part's flags alone.
func NewFlagSet(applet string) *FlagSet { return newFlagSet(applet) }

// Names lists the flags, in the order they were registered.
func (f *FlagSet) Names() []string {
	var out []string
	for _, fi := range f.flags {
		out = append(out, fi.name)
	}
	return out
}

// IsBool tells whether the named flag is a boolean (takes no value).
func (f *FlagSet) IsBool(name string) bool {
	fi := f.byName[name]
	return fi != nil && fi.isBool
}
