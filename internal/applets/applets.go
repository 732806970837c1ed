// Package applets is the table of everything initbox can do. The
// multi-call binary runs it; the image builder makes a link per entry.
package applets

import (
	"github.com/initbox/initbox/internal/cert"
	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/fetch"
	"github.com/initbox/initbox/internal/install"
	"github.com/initbox/initbox/internal/prepare"
	"github.com/initbox/initbox/internal/register"
	"github.com/initbox/initbox/internal/render"
	"github.com/initbox/initbox/internal/run"
	"github.com/initbox/initbox/internal/sleep"
	"github.com/initbox/initbox/internal/sysctl"
	"github.com/initbox/initbox/internal/waitfor"
)

// All is the applet table, in the order help lists it.
var All = []cli.Applet{
	waitfor.Applet,
	fetch.Applet,
	render.Applet,
	register.Applet,
	cert.Applet,
	run.Applet,
	prepare.Applet,
	sysctl.Applet,
	sleep.Applet,
	install.Applet,
}

// Names are the applets' names, in table order.
func Names() []string {
	names := make([]string, len(All))
	for i, a := range All {
		names[i] = a.Name
	}
	return names
}
