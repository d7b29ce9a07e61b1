# shellcheck shell=bash
# Sourced by the action's step scripts.

# an error annotation on the run, then a failed step
fail() {
  echo "::error title=pytest-modelroute::$*"
  exit 1
}

# the shell-like words of an input, one per line ("-k 'a and b'" is two words)
words() {
  python -c 'import shlex, sys; sys.stdout.write("".join(w + "\n" for w in shlex.split(sys.argv[1])))' "$1"
}
