#!/usr/bin/env bash
# Installs Debian packages (the arguments) for the tests that need a program
# of one: rabbitmq-server (with the Erlang it needs) for tests/queues, and
# prometheus for e2e's promtool. aptinstall.Install runs this itself when the
# program is missing. Needs root; reaches only Debian's package archive.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# The packages' own services are not used: the tests run brokers of their own
# on free ports, and a Prometheus server started by the package's postinst
# would hold :9090 on the machine. policy-rc.d answering 101 keeps invoke-rc.d
# and deb-systemd-invoke from starting them (Docker images ship one already).
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\n# tests/aptinstall/install.sh: no service starts while it installs.\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
# Waits for another apt-get or dpkg to finish rather than failing.
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@"
