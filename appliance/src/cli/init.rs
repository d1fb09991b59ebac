//! `vigil init`: a fresh data directory made ready before the daemon's first start (the
//! image's first-boot unit runs it): mode 0700, the thumbnail and user-password keys, the
//! self-signed TLS certificate, and the first admin password, printed once on stdout (the
//! console). Running it again changes nothing and says so.

use std::os::unix::fs::PermissionsExt as _;
use std::process::ExitCode;

use anyhow::Context as _;
use vigil::keyring::Keyring;
use vigil::tls::CertificateFiles;
use vigil::users::FileUsers;

pub fn run(ctx: &super::Context) -> anyhow::Result<ExitCode> {
    let dir = &ctx.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", dir.display()))?;
    Keyring::open_or_create(&vigil::sightings::key_file(dir))
        .context("cannot make the thumbnail key")?;
    let (_, first_password) = FileUsers::open(dir).context("cannot make the user store")?;
    let certificate = CertificateFiles::in_data_dir(dir);
    let names = vec![onvif::system::hostname(), "localhost".to_string()];
    let made_certificate = certificate.ensure(&names)?;
    match first_password {
        Some(password) => println!(
            "Vigil is set up in {}.\nWeb UI and ONVIF user: admin\nFirst password (shown once; the web UI asks for a new one): {password}",
            dir.display()
        ),
        None => println!("Vigil was already set up in {}; nothing changed.", dir.display()),
    }
    if made_certificate {
        let fingerprint = openssl::x509::X509::from_pem(&std::fs::read(&certificate.certificate)?)?
            .digest(openssl::hash::MessageDigest::sha256())?
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        println!("HTTPS certificate SHA-256 fingerprint: {fingerprint}");
    }
    Ok(ExitCode::SUCCESS)
}
