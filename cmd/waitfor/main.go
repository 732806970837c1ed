// Command waitfor is the waitfor applet alone.
package main

import (
	"os"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/waitfor"
)

func main() { os.Exit(cli.Single(waitfor.Applet)) }
