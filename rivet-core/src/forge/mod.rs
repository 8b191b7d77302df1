//! The code forges Rivet talks to: where webhooks come from and where commit statuses go.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::job::UnknownValue;

pub mod webhook;

/// A code forge. Gitea and Forgejo speak the same API and webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forge {
    /// GitHub (github.com or GitHub Enterprise Server).
    Github,
    /// GitLab (gitlab.com or self-managed).
    Gitlab,
    /// Gitea or Forgejo.
    Gitea,
}

impl Forge {
    /// Every forge, in declaration order.
    pub const ALL: &'static [Forge] = &[Forge::Github, Forge::Gitlab, Forge::Gitea];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::Github => "github",
            Forge::Gitlab => "gitlab",
            Forge::Gitea => "gitea",
        }
    }

    /// The REST API's base URL of the public instance, when there is one.
    pub fn default_api_url(self) -> Option<&'static str> {
        match self {
            Forge::Github => Some("https://api.github.com"),
            Forge::Gitlab => Some("https://gitlab.com/api/v4"),
            Forge::Gitea => None,
        }
    }
}

impl FromStr for Forge {
    type Err = UnknownValue;
    fn from_str(text: &str) -> Result<Self, UnknownValue> {
        match text {
            "github" => Ok(Forge::Github),
            "gitlab" => Ok(Forge::Gitlab),
            "gitea" | "forgejo" => Ok(Forge::Gitea),
            _ => Err(UnknownValue { kind: "forge", value: text.to_owned() }),
        }
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_forge_parses_its_own_name() {
        for forge in Forge::ALL {
            assert_eq!(forge.as_str().parse::<Forge>(), Ok(*forge));
        }
        assert_eq!("forgejo".parse::<Forge>(), Ok(Forge::Gitea));
        assert_eq!(
            "bitbucket".parse::<Forge>().map_err(|e| e.to_string()),
            Err("unknown forge `bitbucket`".to_owned())
        );
    }
}
