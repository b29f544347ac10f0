//! smol shell (being written).
