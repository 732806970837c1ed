package tmpl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/initbox/initbox/internal/oserr"
)

// LoadValues reads .Values: each file (YAML or JSON, a map at the top) is
// merged over the ones before it, map into map, then each KEY=VALUE of sets
// is placed at its dotted path as a string.
func LoadValues(files, sets []string, setFlag string) (map[string]any, error) {
	if setFlag == "" {
		setFlag = "set"
	}
	values := map[string]any{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--values %s: %w", f, oserr.Reason(err))
		}
		var v any
		if err := unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("--values %s: %s", f, strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "))
		}
		if v == nil {
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("--values %s: the top level must be a map of keys, not a %s", f, kind(v))
		}
		merge(values, m)
	}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("invalid value %q for --%s: want KEY=VALUE", s, setFlag)
		}
		path := strings.Split(k, ".")
		for _, p := range path {
			if p == "" {
				return nil, fmt.Errorf("invalid key %q for --%s: an empty part", k, setFlag)
			}
		}
		at := values
		for _, p := range path[:len(path)-1] {
			next, ok := at[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				at[p] = next
			}
			at = next
		}
		at[path[len(path)-1]] = v
	}
	return values, nil
}

// unmarshal reads YAML, or JSON straight: JSON is YAML, but the YAML path
// converts it to JSON on the way and holds several copies of a large value.
func unmarshal(b []byte, v *any) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(v); err != nil {
			return err
		}
		if d.More() {
			return fmt.Errorf("more than one JSON value")
		}
		return nil
	}
	return yaml.Unmarshal(b, v, useNumber)
}

// merge copies src into dst, merging maps present in both.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func kind(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case string:
		return "string"
	default:
		return "scalar"
	}
}
