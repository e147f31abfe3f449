//! Per-plugin settings from the `[game.NAME]` sections of the server's TOML file, so a
//! plugin adds settings without touching the engine's configuration.

use bevy_ecs::prelude::*;
use serde::de::DeserializeOwned;

/// The `[game]` table of the configuration, and what plugins made of it.
#[derive(Resource, Debug, Default)]
pub struct GameSettings {
    sections: toml::Table,
    read: Vec<String>,
    errors: Vec<String>,
}

impl GameSettings {
    /// Settings from the `[game]` table (one sub-table per plugin).
    pub fn new(sections: toml::Table) -> Self {
        Self {
            sections,
            ..Self::default()
        }
    }

    /// Reads section `name` as `S`. An absent section reads as an empty one, so a type whose
    /// fields all have defaults works without a file; an error is kept for
    /// [`GameSettings::check`] and a default value is returned meanwhile.
    pub fn read<S: DeserializeOwned>(&mut self, name: &str) -> Option<S> {
        self.read.push(name.to_owned());
        let (table, absent) = match self.sections.get(name) {
            Some(toml::Value::Table(table)) => (table.clone(), ""),
            Some(_) => {
                self.errors
                    .push(format!("[game.{name}] must be a table of settings"));
                return None;
            }
            None => (toml::Table::new(), " (the section is missing)"),
        };
        match toml::Value::Table(table).try_into::<S>() {
            Ok(settings) => Some(settings),
            Err(error) => {
                self.errors
                    .push(format!("[game.{name}]{absent}: {}", error.message()));
                None
            }
        }
    }

    /// Every problem found: sections that did not read, and sections no plugin reads (a typo
    /// would otherwise silently leave the defaults in force).
    pub fn check(&self) -> Result<(), String> {
        let mut problems = self.errors.clone();
        for name in self.sections.keys() {
            if !self.read.iter().any(|read| read == name) {
                problems.push(format!("[game.{name}]: no plugin reads this section"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Snow {
        #[serde(default = "five")]
        npcs: u32,
    }
    fn five() -> u32 {
        5
    }

    #[derive(Deserialize, Debug)]
    struct Required {
        #[allow(dead_code)]
        speed: f32,
    }

    fn settings(text: &str) -> GameSettings {
        GameSettings::new(toml::from_str(text).unwrap())
    }

    #[test]
    fn a_section_is_read_with_defaults_for_missing_keys() {
        let mut game = settings("[snow]\nnpcs = 2");
        assert_eq!(game.read::<Snow>("snow"), Some(Snow { npcs: 2 }));
        let mut empty = settings("");
        assert_eq!(empty.read::<Snow>("snow"), Some(Snow { npcs: 5 }));
        assert!(game.check().is_ok() && empty.check().is_ok());
    }

    #[test]
    fn malformed_missing_and_unread_sections_are_errors() {
        let mut game = settings("[snow]\nnpcs = \"many\"\n[typo]\nx = 1");
        assert_eq!(game.read::<Snow>("snow"), None);
        assert!(game.read::<Required>("needs").is_none());
        let error = game.check().unwrap_err();
        assert!(error.contains("[game.snow]"), "{error}");
        assert!(
            error.contains("[game.needs] (the section is missing)") && error.contains("speed"),
            "{error}"
        );
        assert!(error.contains("[game.typo]: no plugin reads"), "{error}");
    }
}
