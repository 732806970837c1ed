// Command initbox is the multi-call binary: every applet in one static
// executable, chosen by the first argument or by the name of a link to it.
package main

import (
	"os"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/install"
	"github.com/initbox/initbox/internal/waitfor"
)

// applets is the table of everything initbox can do.
var applets = []cli.Applet{
	waitfor.Applet,
	install.Applet,
}

func main() { os.Exit(cli.Main(applets...)) }
