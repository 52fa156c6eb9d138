#!/usr/bin/env bash
# Installs Debian's rabbitmq-server (and the Erlang it needs) for
# queues.StartRabbit and queues.NewRabbitWith, which run this themselves when the
# broker is missing. Needs root; reaches only Debian's package archive. The
# package's own service is not used: the tests run brokers of their own on
# free ports (and Docker-like machines refuse to start services anyway).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# Waits for another apt-get or dpkg to finish rather than failing.
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends rabbitmq-server
