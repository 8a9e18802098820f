//! Modalities of media items, signal groups and decoders.
use crate::*;

/// What a media item or a signal group is (`ngpt_modality`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Modality {
    Text,
    Image,
    Audio,
    Video,
}

impl Modality {
    pub(crate) fn raw(self) -> sys::ngpt_modality {
        match self {
            Modality::Text => sys::NGPT_MODALITY_TEXT,
            Modality::Image => sys::NGPT_MODALITY_IMAGE,
            Modality::Audio => sys::NGPT_MODALITY_AUDIO,
            Modality::Video => sys::NGPT_MODALITY_VIDEO,
        }
    }

    pub(crate) fn from_raw(m: sys::ngpt_modality) -> Modality {
        match m {
            sys::NGPT_MODALITY_IMAGE => Modality::Image,
            sys::NGPT_MODALITY_AUDIO => Modality::Audio,
            sys::NGPT_MODALITY_VIDEO => Modality::Video,
            _ => Modality::Text,
        }
    }

    /// The modality's bit (`NGPT_MODALITY_BIT` / `NGPT_PIPELINE_FORCE`).
    pub fn bit(self) -> u32 {
        1u32 << self.raw()
    }
}

pub(crate) fn bits(ms: &[Modality]) -> u32 {
    ms.iter().fold(0, |b, m| b | m.bit())
}

/// The bits of output modalities: `Text` has no output (its bit is the projector's input one).
pub(crate) fn output_bits(ms: &[Modality]) -> Result<u32> {
    if ms.contains(&Modality::Text) {
        return Err(Error::invalid("Modality::Text is not an output modality (image, audio or video)"));
    }
    Ok(bits(ms))
}

