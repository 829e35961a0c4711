//! `netfwd down (-c FILE | --name NET)`: remove everything of a network.

use std::path::Path;

use anyhow::Result;

use crate::{config, name::NetworkName, network};

pub async fn exec(config_path: Option<&Path>, name: Option<&NetworkName>) -> Result<()> {
    let name = match (config_path, name) {
        (Some(path), _) => config::load_config(path)?.name().clone(),
        (None, Some(name)) => name.clone(),
        (None, None) => {
            return Err(crate::input_error!("down: give -c FILE or --name NET"));
        }
    };
    network::down(&name).await?;
    println!("network {name} is down");
    Ok(())
}
