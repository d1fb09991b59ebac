//! `vigil watchlist ...` and `vigil person ...`.

use std::process::ExitCode;

use clap::Subcommand;
use vigil::watchlist::DEFAULT_THRESHOLD;

use super::Context;

#[derive(Subcommand)]
pub enum WatchlistCommand {
    /// Create a watchlist.
    Create {
        name: String,
        /// Cosine similarity from which a face matches a person of this list.
        #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
        threshold: f32,
        /// What a match means: deny (keep out; the live page sounds it), allow (staff,
        /// VIPs) or watch (of interest).
        #[arg(long, default_value = "watch", value_parser = ["deny", "allow", "watch"])]
        kind: String,
    },
    /// List watchlists with their number of persons.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a watchlist with all its persons and faces.
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum PersonCommand {
    /// List persons (of one watchlist, or all).
    List {
        #[arg(long)]
        watchlist: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a person and every face enrolled for them.
    Delete {
        #[arg(long)]
        watchlist: String,
        /// The person's name (if unique in the list) or id.
        person: String,
    },
}

pub fn watchlist(ctx: &Context, command: WatchlistCommand) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    match command {
        WatchlistCommand::Create {
            name,
            threshold,
            kind,
        } => {
            let mut list = store.create_watchlist(&name, threshold)?;
            list.kind = serde_json::from_value(serde_json::Value::String(kind))?;
            store.put_watchlist(&list)?;
            ctx.audit(
                "watchlist.create",
                &name,
                serde_json::json!({ "id": list.id, "threshold": threshold, "kind": list.kind }),
            )?;
            println!(
                "created {} watchlist {} ({}) with threshold {}",
                list.kind.as_str(),
                list.name,
                list.id,
                list.threshold
            );
        }
        WatchlistCommand::List { json } => {
            for list in store.watchlists()? {
                let persons = store.persons(Some(list.id))?.len();
                if json {
                    let mut value = serde_json::to_value(&list)?;
                    value["persons"] = persons.into();
                    println!("{value}");
                } else {
                    println!(
                        "{}\t{} persons\tthreshold {}\t{}\t{}",
                        list.name,
                        persons,
                        list.threshold,
                        list.kind.as_str(),
                        if list.active { "active" } else { "inactive" }
                    );
                }
            }
        }
        WatchlistCommand::Delete { name } => {
            let list = store.require_watchlist(&name)?;
            let removed = store.delete_watchlist(&list)?;
            ctx.audit("watchlist.delete", &name, serde_json::to_value(removed)?)?;
            println!(
                "deleted watchlist {name}: {} persons, {} faces",
                removed.persons, removed.enrolments
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn person(ctx: &Context, command: PersonCommand) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    match command {
        PersonCommand::List { watchlist, json } => {
            let lists = store.watchlists()?;
            let filter = watchlist
                .map(|name| store.require_watchlist(&name))
                .transpose()?;
            let mut faces_of = std::collections::HashMap::new();
            for list in lists
                .iter()
                .filter(|l| filter.as_ref().is_none_or(|f| f.id == l.id))
            {
                store.for_each_enrolment(list.id, |e| {
                    *faces_of.entry(e.person).or_insert(0usize) += 1
                })?;
            }
            for person in store.persons(filter.map(|w| w.id))? {
                let list = lists
                    .iter()
                    .find(|l| l.id == person.watchlist)
                    .map_or("?", |l| l.name.as_str());
                let faces = faces_of.get(&person.id).copied().unwrap_or(0);
                if json {
                    let mut value = serde_json::to_value(&person)?;
                    value["watchlist_name"] = list.into();
                    value["faces"] = faces.into();
                    println!("{value}");
                } else {
                    let until = person
                        .valid_until
                        .map(|t| format!("\tvalid until {t}"))
                        .unwrap_or_default();
                    println!(
                        "{}\t{}\t{}\t{} faces{}",
                        list, person.name, person.id, faces, until
                    );
                }
            }
        }
        PersonCommand::Delete { watchlist, person } => {
            let list = store.require_watchlist(&watchlist)?;
            let found = store.find_person(&list, &person)?.ok_or_else(|| {
                vigil::watchlist::StoreError::NoPerson(person.clone(), list.name.clone())
            })?;
            let removed = store.delete_person(&found)?;
            ctx.audit(
                "person.delete",
                &found.id.to_string(),
                serde_json::json!({ "watchlist": list.name, "faces": removed.enrolments }),
            )?;
            println!(
                "deleted {} ({}) from {}: {} faces",
                found.name, found.id, list.name, removed.enrolments
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
