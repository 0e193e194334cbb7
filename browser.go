package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at release build time (-ldflags "-X main.version=v1.2.3");
// a build from source reports its module version or VCS revision instead.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
	}
	return "devel"
}

// usage is what -h prints: what the kiosk is, how to start it, and every
// flag. A flag's usage may start with its argument's name in backquotes
// ("`HOST:PORT` where to listen"); the name is then shown once, after the
// flag, and not again in the text.
func usage(fs *flag.FlagSet, w io.Writer) func() {
	return func() {
		fmt.Fprintf(w, `consent-kiosk %s: record a lecture only while everyone in the room consents.

It runs on the lecturer's laptop and opens the lecturer's console in the
browser. Students scan the QR code on the projector and answer on their
phones, anonymously; recording software asks the kiosk whether it may
record (GET /api/unlock) and stops as soon as anyone withdraws.

Start it and follow the console:

  consent-kiosk

Listen on another port, keep the database in a chosen file, and do not
open a browser:

  consent-kiosk -addr :9090 -data ~/kiosk/kiosk.db -no-browser

Flags:
`, versionString())
		fs.VisitAll(func(f *flag.Flag) {
			name, text := flag.UnquoteUsage(f)
			if rest, ok := strings.CutPrefix(f.Usage, "`"+name+"` "); ok {
				text = rest
			}
			line := "  -" + f.Name
			if name != "" {
				line += " " + name
			}
			fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(text, "\n", "\n    \t"))
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
	}
}

// interactive reports whether w is a terminal a person is watching: only
// then is a browser opened for them (never under tests or a service
// manager, whose output goes to a pipe or a file).
func interactive(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// openBrowser asks the desktop to open u in the lecturer's browser. It
// does not wait: the kiosk runs whether or not a browser comes up.
func openBrowser(u string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	case "darwin":
		cmd = exec.Command("open", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}
