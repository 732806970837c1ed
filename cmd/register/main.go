// Command register is the register applet alone.
package main

import (
	"os"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/register"
)

func main() { os.Exit(cli.Single(register.Applet)) }
