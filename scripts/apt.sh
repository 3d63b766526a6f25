# Sourced by the scripts that install Debian packages. `make test` runs two of them at once (the
# agent image's base in the background, the local Slurm in the foreground), and apt-get refuses to
# run while another holds dpkg's lock: `apt_get` takes turns on one lock file of ours, and waits
# for any other apt-get on the machine too, instead of failing.
apt_get() {
  DEBIAN_FRONTEND=noninteractive flock -w 1800 /var/lock/sweep-apt.lock \
    apt-get -o DPkg::Lock::Timeout=900 "$@"
}
