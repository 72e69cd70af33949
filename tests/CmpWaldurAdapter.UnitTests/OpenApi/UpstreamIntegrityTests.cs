using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Testing.Contracts;

namespace CmpWaldurAdapter.UnitTests.OpenApi;

/// <summary>The pinned upstream files are byte-exact copies of what their SOURCE.txt names.</summary>
public sealed class UpstreamIntegrityTests
{
    private const string WaldurBlob = "e4bbce6886df67f1050bab27a9e7151e23700dec";

    [Fact]
    public void Waldur_upstream_decompresses_to_the_pinned_git_blob()
    {
        var bytes = OpenApiDocument.ReadBytes(UpstreamSpecs.PathOf(UpstreamSpecs.WaldurUpstreamPath));

        Assert.Equal(4_056_166, bytes.Length);
        Assert.Equal(WaldurBlob, GitBlobHash(bytes));
        Assert.Equal(WaldurBlob, SourceField("openapi/upstream/waldur/SOURCE.txt", @"Blob:\s*([0-9a-f]{40})"));
    }

    [Fact]
    public void Langflow_upstream_has_the_sha256_of_its_source_note()
    {
        var expected = SourceField("openapi/upstream/langflow/SOURCE.txt", @"sha256:\s*([0-9a-f]{64})");
        var bytes = File.ReadAllBytes(UpstreamSpecs.PathOf(UpstreamSpecs.LangflowUpstreamPath));

        Assert.Equal(expected, Convert.ToHexStringLower(SHA256.HashData(bytes)));
    }

    [Fact]
    public void Ragflow_reference_is_the_pinned_git_blob()
    {
        var expected = SourceField("openapi/upstream/ragflow/SOURCE.txt", @"Blob:\s*([0-9a-f]{40})");
        var bytes = File.ReadAllBytes(UpstreamSpecs.PathOf("openapi/upstream/ragflow/http_api_reference.md"));

        Assert.Equal(expected, GitBlobHash(bytes));
    }

    [Fact]
    public void Git_blob_hash_matches_git_for_a_known_input()
    {
        // `printf 'hello\n' | git hash-object --stdin`
        Assert.Equal("ce013625030ba8dba906f756967f9e9ca394464a", GitBlobHash(Encoding.ASCII.GetBytes("hello\n")));
    }

    [SuppressMessage("Security", "CA5350:Do Not Use Weak Cryptographic Algorithms", Justification = "A git object id is SHA-1 by definition; this identifies, it does not protect.")]
    private static string GitBlobHash(byte[] content)
    {
        var header = Encoding.ASCII.GetBytes($"blob {content.Length}\0");
        return Convert.ToHexStringLower(SHA1.HashData([.. header, .. content]));
    }

    private static string SourceField(string relativePath, string pattern)
    {
        var match = Regex.Match(File.ReadAllText(UpstreamSpecs.PathOf(relativePath)), pattern);
        Assert.True(match.Success, $"{relativePath} has no line matching {pattern}");
        return match.Groups[1].Value;
    }
}
