#!/usr/bin/env bash
# An ActiveMQ classic broker of our own for the AMQP queue adapter's tests: AMQP 1.0 only, on 127.0.0.1:5673
# (RabbitMQ holds 5672, Mosquitto 1883; no OpenWire, STOMP, MQTT or WebSocket connector is opened), data under
# /var/tmp/armonik-activemq, started without systemd as a detached java process.
#
#   start-activemq.sh [start]   install the package if missing, write the configuration, start, wait until the
#                               AMQP port answers; does nothing when a broker already answers there
#   start-activemq.sh stop      stop the broker this script started (SIGTERM, SIGKILL after 30 s)
#   start-activemq.sh status    exit 0 when the AMQP port answers
#
# Settings (environment): ACTIVEMQ_AMQP_PORT (5673), ACTIVEMQ_BASE (/var/tmp/armonik-activemq),
# ACTIVEMQ_START_TIMEOUT (90 s), ACTIVEMQ_HEAP (1g), ACTIVEMQ_USER / ACTIVEMQ_PASSWORD (admin / admin: the one
# user PLAIN logs in as; anonymous clients are welcome too).
#
# Debian's package is built without the AMQP transport; tools/activemq/lib/ holds it (see build-amqp-plugin.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
host=127.0.0.1
port=${ACTIVEMQ_AMQP_PORT:-5673}
base=${ACTIVEMQ_BASE:-/var/tmp/armonik-activemq}
timeout=${ACTIVEMQ_START_TIMEOUT:-90}
heap=${ACTIVEMQ_HEAP:-1g}
user=${ACTIVEMQ_USER:-admin}
password=${ACTIVEMQ_PASSWORD:-admin}
home=/usr/share/activemq
pid_file=$base/activemq.pid
console_log=$base/console.log

# True when an AMQP 1.0 peer answers on host:port (it replies to the SASL protocol header with an AMQP header),
# so that another service listening on the port is not mistaken for the broker.
answers() {
  python3 - "$host" "$port" <<'PY'
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) as sock:
        sock.settimeout(2)
        sock.sendall(b"AMQP\x03\x01\x00\x00")
        sys.exit(0 if sock.recv(8).startswith(b"AMQP") else 1)
except OSError:
    sys.exit(1)
PY
}

log_tail() {
  for file in "$console_log" "$base/data/activemq.log"; do
    if [ -f "$file" ]; then
      echo "--- last lines of $file ---" >&2
      tail -n 30 "$file" >&2
    fi
  done
}

install_package() {
  if dpkg -s activemq >/dev/null 2>&1; then
    return
  fi
  echo "installing Debian's activemq package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q activemq >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q activemq >/dev/null; }
}

write_configuration() {
  mkdir -p "$base/conf" "$base/lib" "$base/data" "$base/tmp"
  cp "$here"/lib/*.jar "$base/lib/"
  cat >"$base/conf/log4j.properties" <<EOF
log4j.rootLogger=INFO, logfile
log4j.logger.org.apache.activemq.transport.amqp=WARN
log4j.appender.logfile=org.apache.log4j.RollingFileAppender
log4j.appender.logfile.file=$base/data/activemq.log
log4j.appender.logfile.maxFileSize=5MB
log4j.appender.logfile.maxBackupIndex=2
log4j.appender.logfile.layout=org.apache.log4j.PatternLayout
log4j.appender.logfile.layout.ConversionPattern=%d | %-5p | %m | %c | %t%n
EOF
  # prioritizedMessages: the store and the dispatch follow JMS priority (0-9), which the adapter maps task
  # priorities onto. maxPageSize: a drain of up to Amqp__LinkCredit messages is answered in one go.
  # statisticsBrokerPlugin: the adapter's depth() asks ActiveMQ.Statistics.Destination.<queue> for the counts.
  # Authentication: SASL ANONYMOUS is allowed (the broker listens on the loopback interface only), and PLAIN
  # for one user, so that both ways of logging in can be tested.
  cat >"$base/conf/activemq.xml" <<EOF
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
         http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="armonik-local" dataDirectory="$base/data"
          useJmx="false" advisorySupport="false" schedulerSupport="false" persistent="true" useShutdownHook="true">
    <destinationPolicy>
      <policyMap>
        <policyEntries>
          <policyEntry queue="&gt;" prioritizedMessages="true" maxPageSize="1000" optimizedDispatch="true" expireMessagesPeriod="0"/>
        </policyEntries>
      </policyMap>
    </destinationPolicy>
    <persistenceAdapter>
      <kahaDB directory="$base/data/kahadb"/>
    </persistenceAdapter>
    <systemUsage>
      <systemUsage>
        <memoryUsage><memoryUsage percentOfJvmHeap="70"/></memoryUsage>
        <storeUsage><storeUsage limit="8 gb"/></storeUsage>
        <tempUsage><tempUsage limit="2 gb"/></tempUsage>
      </systemUsage>
    </systemUsage>
    <plugins>
      <simpleAuthenticationPlugin anonymousAccessAllowed="true">
        <users>
          <authenticationUser username="$user" password="$password" groups="admins"/>
        </users>
      </simpleAuthenticationPlugin>
      <statisticsBrokerPlugin/>
    </plugins>
    <transportConnectors>
      <transportConnector name="amqp"
          uri="amqp://$host:$port?maximumConnections=1000&amp;wireFormat.maxFrameSize=1048576&amp;transport.transformer=jms&amp;transport.tcpNoDelay=true"/>
    </transportConnectors>
  </broker>
</beans>
EOF
}

running_pid() {
  if [ -f "$pid_file" ]; then
    local pid
    pid=$(cat "$pid_file")
    if kill -0 "$pid" 2>/dev/null && grep -q "activemq.base=$base" "/proc/$pid/cmdline" 2>/dev/null; then
      echo "$pid"
      return 0
    fi
  fi
  return 1
}

start() {
  if answers; then
    echo "ActiveMQ already answers AMQP on $host:$port"
    return 0
  fi
  if pid=$(running_pid); then
    echo "ActiveMQ (pid $pid) is starting already; waiting for it"
  else
    install_package
    write_configuration
    # setsid: the broker outlives the shell (and CI step) that started it, and its signals.
    nohup setsid java "-Xms128m" "-Xmx$heap" -Djava.awt.headless=true \
      "-Dactivemq.home=$home" "-Dactivemq.base=$base" "-Dactivemq.conf=$base/conf" "-Dactivemq.data=$base/data" \
      "-Djava.io.tmpdir=$base/tmp" "-Dlog4j.configuration=file:$base/conf/log4j.properties" \
      -jar "$home/bin/activemq.jar" start "xbean:file:$base/conf/activemq.xml" \
      >"$console_log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$pid_file"
    echo "started ActiveMQ (pid $pid), data in $base/data"
  fi
  local deadline=$((SECONDS + timeout))
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "ActiveMQ (pid $pid) exited before answering AMQP on $host:$port" >&2
      log_tail
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "ActiveMQ (pid $pid) did not answer AMQP on $host:$port within ${timeout}s" >&2
      log_tail
      return 1
    fi
    sleep 0.5
  done
  echo "ActiveMQ answers AMQP on $host:$port"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    echo "no ActiveMQ started by this script is running (pid file $pid_file)"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { echo "stopped ActiveMQ (pid $pid)"; rm -f "$pid_file"; return 0; }
    sleep 0.5
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pid_file"
  echo "killed ActiveMQ (pid $pid): it did not stop within 30s"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) answers ;;
  *)
    echo "usage: $0 [start|stop|status]" >&2
    exit 2
    ;;
esac
