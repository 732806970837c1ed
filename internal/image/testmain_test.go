package image

import (
	"testing"

	"github.com/initbox/initbox/internal/testenv"
)

// TestMain fails the package if a process one of its tests started is
// still running when they are done (testenv.Main).
func TestMain(m *testing.M) { testenv.Main(m) }
