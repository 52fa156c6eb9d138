// Package aptinstall installs the Debian packages whose programs tests run
// (RabbitMQ's broker, Prometheus's promtool) when they are missing, so that
// `go test` needs nothing run before it.
package aptinstall

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// Install installs the Debian packages pkgs through install.sh (apt-get)
// unless file, a file one of them installs, is there already: once per
// machine. It needs root and apt-get, as on the project's machines and CI;
// without them it fails saying so: skipping would hide that tests did not
// run. logf says when it installs, which takes a while.
func Install(file string, logf func(string, ...any), pkgs ...string) error {
	if installed(file) {
		return nil
	}
	list := strings.Join(pkgs, " ")
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%s is missing, and installing it (apt-get install %s) needs apt-get: %v", file, list, err)
	}
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("%s is missing, and installing it (apt-get install %s) needs root, not uid %d", file, list, uid)
	}
	// go test runs packages in parallel processes, and other checkouts may
	// test too: one installs, the others wait on the machine's lock (apt-get
	// takes one package manager run at a time anyway) and then find the
	// install done.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "currents-connect-apt-install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close() // releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if installed(file) {
		return nil
	}
	logf("installing %s with apt-get (once per machine)", list)
	_, src, _, _ := runtime.Caller(0)
	cmd := exec.Command("bash", append([]string{filepath.Join(filepath.Dir(src), "install.sh")}, pkgs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("installing %s with %s: %v\n%s", list, cmd, err, out)
	}
	if !installed(file) {
		return fmt.Errorf("%s installed %s, and %s is still missing", cmd, list, file)
	}
	return nil
}

func installed(file string) bool {
	_, err := os.Stat(file)
	return err == nil
}
