package queues

import "github.com/currents-connect/currents-connect/tests/aptinstall"

// rabbitServer is the broker's start script as Debian's rabbitmq-server
// package installs it: run directly (not /usr/sbin's wrapper, which
// switches to the rabbitmq user and its fixed directories).
const rabbitServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// installRabbit installs Debian's rabbitmq-server (with Erlang) when it is
// missing: about 50 s, once per machine (aptinstall.Install).
func installRabbit(logf func(string, ...any)) error {
	return aptinstall.Install(rabbitServer, logf, "rabbitmq-server")
}
