#!/usr/bin/env bash
# Rebuilds the two jars of tools/activemq/lib/ that Debian's ActiveMQ lacks for AMQP 1.0.
#
# Debian builds `activemq` 5.17.2 without its activemq-amqp module (see
# /usr/share/doc/libactivemq-java/README.Debian) and does not package Qpid proton-j, which that module needs,
# so a Debian broker speaks OpenWire only. The jars in lib/ are compiled from the Apache-2.0 sources of:
#   - apache/activemq, tag activemq-5.17.2, activemq-amqp/src/main (the AMQP transport; the AMQP-over-WebSocket
#     classes are left out: they need Jetty, which Debian's broker does not ship either);
#   - apache/qpid-proton-j, tag 0.33.10 (the proton-j version ActiveMQ 5.17.2 is built against), proton-j/src/main;
# against Debian's activemq 5.17.2 jars, for Java 11+ bytecode. Each jar carries its project's LICENSE and NOTICE.
#
# Usage: build-amqp-plugin.sh ACTIVEMQ_GIT_DIR PROTON_J_GIT_DIR   (git clones of the two repositories)
# Needs a JDK (javac, jar) and `apt-get install activemq`. CI never runs this: it uses the committed jars.
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: $0 ACTIVEMQ_GIT_DIR PROTON_J_GIT_DIR" >&2
  exit 2
fi
activemq_git=$1
proton_git=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work"/{src,classes-proton,classes-amqp}
git -C "$proton_git" archive 0.33.10 proton-j/src/main LICENSE NOTICE | tar -x -C "$work/src"
git -C "$activemq_git" archive activemq-5.17.2 activemq-amqp/src/main LICENSE NOTICE | tar -x -C "$work/src"
# Both archives hold a LICENSE and a NOTICE at their root: keep each project's own.
git -C "$proton_git" show 0.33.10:NOTICE >"$work/proton-NOTICE"
git -C "$proton_git" show 0.33.10:LICENSE >"$work/proton-LICENSE"
git -C "$activemq_git" show activemq-5.17.2:NOTICE >"$work/activemq-NOTICE"
git -C "$activemq_git" show activemq-5.17.2:LICENSE >"$work/activemq-LICENSE"

find "$work/src/proton-j/src/main/java" -name '*.java' >"$work/proton-sources"
javac -nowarn -encoding UTF-8 --release 11 -d "$work/classes-proton" @"$work/proton-sources"
mkdir -p "$work/classes-proton/META-INF"
cp "$work/proton-LICENSE" "$work/classes-proton/META-INF/LICENSE"
cp "$work/proton-NOTICE" "$work/classes-proton/META-INF/NOTICE"

classpath="$work/classes-proton:$(find /usr/share/activemq/lib -maxdepth 1 -name '*.jar' | sort | tr '\n' ':')"
find "$work/src/activemq-amqp/src/main/java" -name '*.java' ! -name 'AmqpWS*' >"$work/amqp-sources"
javac -nowarn -encoding UTF-8 --release 11 -cp "$classpath" -d "$work/classes-amqp" @"$work/amqp-sources"
cp -r "$work/src/activemq-amqp/src/main/resources/META-INF" "$work/classes-amqp/"
rm -f "$work"/classes-amqp/META-INF/services/org/apache/activemq/transport/amqp+ws*
cp "$work/activemq-LICENSE" "$work/classes-amqp/META-INF/LICENSE"
cp "$work/activemq-NOTICE" "$work/classes-amqp/META-INF/NOTICE"

mkdir -p "$here/lib"
jar --create --file "$here/lib/proton-j-0.33.10.jar" -C "$work/classes-proton" .
jar --create --file "$here/lib/activemq-amqp-5.17.2.jar" -C "$work/classes-amqp" .
ls -l "$here/lib"
