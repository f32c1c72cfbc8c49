#include "models/tracks.h"

namespace bitbyte::models {

const std::vector<Track>& Tracks() {
  static const std::vector<Track> tracks = {BitByteLMTrack(), MambaMLMTrack(), BitTransformerLMTrack()};
  return tracks;
}

const Track* FindTrack(const std::string& name) {
  for (const Track& t : Tracks())
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace bitbyte::models
