//! `showip.sh` labels what it prints, so a person knows which address to
//! give out: the one others most likely reach first, the others, link-local
//! ones with the interface they work on, and loopback. The machine's
//! addresses are a fake `ip` first on the `PATH`, so the test is the same
//! everywhere and needs no network.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A directory holding an `ip` that prints `addr_lines` as `ip -o addr
/// show` would, and answers `ip route get` (IPv4 only) with `route`, or
/// fails as with no route when it is empty (a machine offline).
fn fake_ip(name: &str, addr_lines: &str, route: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("showip-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let ip = dir.join("ip");
    let route = if route.is_empty() {
        "echo 'RTNETLINK answers: Network is unreachable' >&2; exit 2".to_string()
    } else {
        format!("echo '{route}'")
    };
    std::fs::write(
        &ip,
        format!(
            "#!/bin/sh\ncase \"$*\" in\n\
             *-6*route*) exit 2 ;;\n\
             *route*) {route} ;;\n\
             *) cat <<'EOF'\n{addr_lines}EOF\n;;\nesac\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ip, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `bash showip.sh` with `fake` first on the `PATH`, within 10 s.
fn showip(fake: &Path) -> Output {
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    let mut child = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/showip.sh"))
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("showip.sh did not end within 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn showip_labels_the_address_to_give_first_the_others_and_link_local_ones_with_their_interface() {
    let fake = fake_ip(
        "labels",
        "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever
2: eth0    inet 192.168.1.20/24 brd 192.168.1.255 scope global eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet6 fd00::2/64 scope global \\       valid_lft forever preferred_lft forever
2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever preferred_lft forever
3: wlan0    inet 169.254.3.4/16 scope link wlan0\\       valid_lft forever preferred_lft forever
3: wlan0    inet 10.0.0.5/8 scope global wlan0\\       valid_lft forever preferred_lft forever
",
        "1.1.1.1 via 192.168.1.1 dev eth0 src 192.168.1.20 uid 0",
    );
    let out = showip(&fake);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout,
        "reach me first: 192.168.1.20
also: 10.0.0.5
also: fd00::2
link-local (wlan0 only): 169.254.3.4
link-local (eth0 only): fe80::1%eth0
this machine only: 127.0.0.1
this machine only: ::1
"
    );
    // No public address: where to learn it.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("provider's console"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn showip_puts_a_public_address_first_and_says_nothing_of_nat() {
    let fake = fake_ip(
        "public",
        "1: lo    inet 127.0.0.1/8 scope host lo
2: eth0    inet 10.1.2.3/16 scope global eth0
2: eth0    inet 203.0.113.7/24 scope global eth0
2: eth0    inet6 2001:db8::7/64 scope global
",
        "",
    );
    let out = showip(&fake);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "reach me first: 203.0.113.7
also: 2001:db8::7
also: 10.1.2.3
this machine only: 127.0.0.1
"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn showip_with_loopback_alone_says_no_peer_can_reach_this_machine() {
    let fake = fake_ip("loopback", "1: lo    inet 127.0.0.1/8 scope host lo\n", "");
    let out = showip(&fake);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "this machine only: 127.0.0.1\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no network address found besides loopback")
    );
}
