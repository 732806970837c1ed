// Command fetch is the fetch applet alone.
package main

import (
	"os"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/fetch"
)

func main() { os.Exit(cli.Single(fetch.Applet)) }
