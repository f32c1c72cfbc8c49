#pragma once
// Drawing a job's graphs: Graphviz DOT from a pipeline document (pipeline::DescribeJson, or a
// run's pipeline.json with its figures).
#include <string>

namespace bitbyte::pipeline {

// DOT of every graph in the document: each node with its kind, concurrency and queue bound,
// each edge with what flows on it (token returns dashed). With figures, nodes are filled by
// busy % (white 0% to red 100%) and the bottleneck is outlined and named. Throws DataError
// naming `source` when the text is not a pipeline document.
std::string PipelineDot(const std::string& json_text, const std::string& source);

}  // namespace bitbyte::pipeline
