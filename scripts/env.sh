# Sourced by the project's scripts: the JDK and Maven settings every script uses.
# The kernel every script boots in the test VM unless told otherwise (UBD_VM_KERNEL, or --kernel); scripts/test-all
# runs every kernel of UBD_VM_KERNELS instead. scripts/vm/ubd-vm reads this line too.
UBD_DEFAULT_KERNEL=6.18
JAVA_HOME=${UBD_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
if [ ! -x "$JAVA_HOME/bin/java" ]; then
  echo "reactor-ubd needs the Temurin 25 JDK at $JAVA_HOME (or set UBD_JAVA_HOME)" >&2
  exit 1
fi
export JAVA_HOME
export PATH="$JAVA_HOME/bin:$PATH"
# Maven's own guava warns about sun.misc.Unsafe on JDK 25; it is harmless noise.
export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
# JVM options for device-test and sample JVMs: native access for java.lang.foreign, BlockHound's flag on JDK 25,
# and a fast-starting JIT (the VM emulates the CPU, so start-up dominates).
UBD_JVM_OPTS_BENCH="--enable-native-access=ALL-UNNAMED -XX:+UseParallelGC"
UBD_JVM_OPTS="--enable-native-access=ALL-UNNAMED -XX:+AllowRedefinitionToAddDeleteMethods -XX:+EnableDynamicAgentLoading -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
ensure_maven() {
  if ! command -v mvn >/dev/null 2>&1; then
    echo "installing maven" >&2
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q maven >/dev/null
  fi
}

# Debian packages the tests use on the host itself (the VM sees the host's root, so they serve it too).
ensure_test_packages() {
  # chromium and chromedriver: the management page's browser test (Selenium, headless).
  # groff, dpkg-deb and man: the man pages' test, the Debian package (scripts/package-deb) and its device test.
  local -A need=([nbd-server]=nbd-server [qemu-nbd]=qemu-utils [fio]=fio [chromium]=chromium [chromedriver]=chromium-driver
    [groff]=groff-base [dpkg-deb]=dpkg [man]=man-db)
  local missing=() b
  for b in "${!need[@]}"; do
    command -v "$b" >/dev/null 2>&1 || missing+=("${need[$b]}")
  done
  ((${#missing[@]})) || return 0
  echo "installing ${missing[*]}" >&2
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 \
    --no-install-recommends "${missing[@]}" >/dev/null
}

# Builds the jars the scripts run (samples/target/ubd.jar and the rest), skipping the tests.
build_jars() {
  ensure_maven
  mvn -B -ntp -q package -DskipTests
}

# Runs a command where ublk is: here when this machine has it (/dev/ublk-control, or ublk_drv loads), else as root
# inside the test VM (scripts/vm/ubd-vm, which boots UBD_DEFAULT_KERNEL unless told --kernel):
#   here_or_in_vm [--kernel K] [--timeout SECONDS] [--share DIR]... [--env NAME=VALUE]... -- COMMAND [ARGS...]
# Here, each --env is set for COMMAND, and --kernel, --timeout and --share do nothing. Returns COMMAND's status.
here_or_in_vm() {
  local vm=() envs=()
  while (($#)); do
    case $1 in
      --kernel|--timeout|--share) vm+=("$1" "$2"); shift 2 ;;
      --env) vm+=("$1" "$2"); envs+=("$2"); shift 2 ;;
      --) shift; break ;;
      *) echo "here_or_in_vm: unknown option $1" >&2; return 2 ;;
    esac
  done
  if [ -e /dev/ublk-control ] || { [ "$(id -u)" = 0 ] && modprobe ublk_drv 2>/dev/null; }; then
    env "${envs[@]}" "$@"
  else
    "$(dirname "${BASH_SOURCE[0]}")/vm/ubd-vm" "${vm[@]}" -- "$@"
  fi
}
