package queues

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
)

// rabbitServer is the broker's start script as Debian's rabbitmq-server
// package installs it: run directly (not /usr/sbin's wrapper, which
// switches to the rabbitmq user and its fixed directories).
const rabbitServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// installRabbit installs Debian's rabbitmq-server (with Erlang) through
// install-rabbitmq.sh when it is missing, so that `go test ./...` needs
// nothing run before it: about 50 s, once per machine. It needs root and
// apt-get, as on the project's machines and CI; without them it fails
// saying so: skipping would hide that the RabbitMQ tests did not run.
func installRabbit(logf func(string, ...any)) error {
	if rabbitInstalled() {
		return nil
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	// go test runs packages in parallel processes, and other checkouts may
	// test too: one installs, the others wait on the machine's lock and then
	// find the install done.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "currents-connect-rabbitmq-install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close() // releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if rabbitInstalled() {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		return fmt.Errorf("RabbitMQ is not installed (%s is missing) and installing it needs root and apt-get "+
			"(apt-get install rabbitmq-server): %v, uid %d", rabbitServer, err, os.Geteuid())
	}
	logf("installing rabbitmq-server with apt-get (once per machine)")
	cmd := exec.Command("bash", filepath.Join(dir, "install-rabbitmq.sh"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("installing RabbitMQ with %s: %v\n%s", cmd, err, out)
	}
	if !rabbitInstalled() {
		return fmt.Errorf("%s installed rabbitmq-server, and %s is still missing", cmd, rabbitServer)
	}
	return nil
}

func rabbitInstalled() bool {
	_, err := os.Stat(rabbitServer)
	return err == nil
}
