# shellcheck shell=bash
# Source this file to work with the kit by hand (molecule, ansible-playbook):
#   . scripts/lib/env.sh
# It puts the project venv first on PATH and points podman at the kit's settings.
_prefect_fleet_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PREFECT_FLEET_REPO="$_prefect_fleet_repo"
export CONTAINERS_CONF="$_prefect_fleet_repo/scripts/lib/containers.conf"
export ANSIBLE_CONFIG="$_prefect_fleet_repo/ansible.cfg"
case ":$PATH:" in
  *":$_prefect_fleet_repo/.venv/bin:"*) ;;
  *) export PATH="$_prefect_fleet_repo/.venv/bin:$PATH" ;;
esac
unset _prefect_fleet_repo
