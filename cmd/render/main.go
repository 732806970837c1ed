// Command render is the render applet alone.
package main

import (
	"os"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/render"
)

func main() { os.Exit(cli.Single(render.Applet)) }
