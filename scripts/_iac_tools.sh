# Sourced by test.sh after _venv.sh: one virtualenv per template checker in
# requirements-iac.txt (var/tools/<name>), installed again when its pin changes.
# Two test runs of one checkout at once take turns (flock), so neither removes
# the other's half-installed tool; .pin is written last, once the tool works.
iac_tool() {  # iac_tool <package> -> the path of its venv
  local name="$1" pin venv
  pin="$(grep -E "^${name}==" requirements-iac.txt)"
  venv="var/tools/${name}"
  mkdir -p var/tools
  (
    flock 9
    if [ ! -x "${venv}/bin/python" ] || [ "$(cat "${venv}/.pin" 2>/dev/null)" != "$pin" ]; then
      echo "[setup] installing ${pin} into ${venv}" >&2
      rm -rf "$venv"
      "$PY" -m venv "$venv"
      "${venv}/bin/python" -m pip install --quiet "$pin" >&2
      echo "$pin" > "${venv}/.pin"
    fi
  ) 9>"var/tools/.${name}.lock"
  echo "$venv"
}
