// Command initbox is the multi-call binary: every applet in one static
// executable, chosen by the first argument or by the name of a link to it.
// The table of applets is internal/applets.
package main

import (
	"os"

	"github.com/initbox/initbox/internal/applets"
	"github.com/initbox/initbox/internal/cli"
)

func main() { os.Exit(cli.Main(applets.All...)) }
