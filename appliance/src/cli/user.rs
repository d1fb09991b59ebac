//! `vigil user`: the appliance's users (ONVIF clients log in with these).

use std::io::BufRead as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use onvif::auth::{User, UserDirectory, UserLevel};
use vigil::users::FileUsers;

#[derive(Subcommand)]
pub enum UserCommand {
    /// List users and their levels.
    List,
    /// Create a user or change one; the password is read from the first line of stdin.
    Set {
        name: String,
        #[arg(long, value_enum)]
        level: Level,
    },
    /// Delete a user (not the last administrator).
    Delete { name: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Level {
    Administrator,
    Operator,
    User,
}

impl From<Level> for UserLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::Administrator => UserLevel::Administrator,
            Level::Operator => UserLevel::Operator,
            Level::User => UserLevel::User,
        }
    }
}

pub fn run(ctx: &super::Context, command: UserCommand) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&ctx.data_dir)
        .with_context(|| format!("cannot create {}", ctx.data_dir.display()))?;
    let (users, first_password) = FileUsers::open(&ctx.data_dir)?;
    if let Some(password) = first_password {
        eprintln!("vigil: created user admin with password {password}");
    }
    match command {
        UserCommand::List => {
            for user in users.list() {
                println!("{}\t{}", user.name, user.level.as_str());
            }
        }
        UserCommand::Set { name, level } => {
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("cannot read the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            let level = UserLevel::from(level);
            users.change(&|table| {
                if table.get(&name).is_some() {
                    table.set(&name, Some(password.clone()), level)
                } else {
                    table.create(User {
                        name: name.clone(),
                        password: password.clone(),
                        level,
                    })
                }
            })?;
            ctx.audit(
                "user.set",
                &name,
                serde_json::json!({ "level": level.as_str() }),
            )?;
            eprintln!("vigil: user {name} saved");
        }
        UserCommand::Delete { name } => {
            users.change(&|table| table.delete(&name))?;
            ctx.audit("user.delete", &name, serde_json::Value::Null)?;
            eprintln!("vigil: user {name} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}
