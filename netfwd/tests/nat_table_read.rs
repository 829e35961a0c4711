//! Reading a large NAT table back whole: the collector's snapshot comes from
//! `BPF_MAP_LOOKUP_BATCH` in chunks, and no entry may be lost or doubled at a
//! chunk's edge.
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;

use std::time::Instant;

use aya::maps::{HashMap, Map, MapData};
use common::PinDir;
use netfwd::loader::{DatapathMaps, Programs};
use netfwd_common::{
    names::MAP_NAT,
    nat::{DIR_EGRESS, DIR_INGRESS, IPPROTO_UDP, NatEntry, NatKey},
};

#[test]
fn every_entry_of_a_table_larger_than_a_chunk_is_read_once() {
    let pins = PinDir::new("natread");
    let _datapath = Programs::load_at(&pins.0, 16_384, None).unwrap();
    let mut nat: HashMap<MapData, NatKey, NatEntry> = HashMap::try_from(
        Map::from_map_data(MapData::from_pin(pins.0.join(MAP_NAT)).unwrap()).unwrap(),
    )
    .unwrap();
    let mut written = Vec::new();
    for i in 0..20_000u32 {
        let key = NatKey {
            saddr: [192, 168, 28, (i % 200) as u8 + 2],
            daddr: [198, 51, 100, 7],
            sport: ((i / 200) as u16 + 1000).to_be_bytes(),
            dport: 53u16.to_be_bytes(),
            proto: IPPROTO_UDP,
            dir: if i % 2 == 0 { DIR_EGRESS } else { DIR_INGRESS },
            _pad: [0; 2],
        };
        let entry = NatEntry {
            created_ns: u64::from(i),
            ..NatEntry::default()
        };
        nat.insert(key, entry, 0).unwrap();
        written.push((key, entry));
    }

    let maps = DatapathMaps::open(&pins.0).unwrap();
    let started = Instant::now();
    let mut read = maps.nat_entries().unwrap();
    let batched = started.elapsed();
    let started = Instant::now();
    let walked = nat.iter().count();
    let one_by_one = started.elapsed();
    eprintln!("20000 entries: batched {batched:?}, one at a time {one_by_one:?}");

    assert_eq!(walked, written.len());
    let order = |(k, _): &(NatKey, NatEntry)| (k.saddr, k.daddr, k.sport, k.dport, k.proto, k.dir);
    read.sort_by_key(order);
    written.sort_by_key(order);
    assert_eq!(read, written);
}
