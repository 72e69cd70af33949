using System.Net;
using System.Security.Cryptography;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Ragflow.Api;
using Microsoft.AspNetCore.DataProtection;
using Refit;

namespace CmpWaldurAdapter.UnitTests.Provisioning;

/// <summary>Names, twin detection, failure classification and credential protection.</summary>
public sealed class ProvisioningRulesTests
{
    private static readonly Guid Resource = Guid.Parse("0f8fad5b-d9cb-469f-a165-70867728950e");

    [Fact]
    public void Names_are_derived_from_waldur_uuids()
    {
        Assert.Equal("cmp-0f8fad5bd9cb469fa16570867728950e", TenantNames.LangflowUsername(Resource));
        Assert.Equal("cmp-0f8fad5bd9cb469fa16570867728950e", TenantNames.LangflowProject(Resource));
        Assert.Equal("cmp-0f8fad5bd9cb469fa16570867728950e", TenantNames.Dataset(Resource));
        Assert.Equal("Research Agent cmp-0f8fad5bd9cb469fa16570867728950e", TenantNames.Flow("Research Agent", Resource));
        Assert.True(TenantNames.Dataset(Resource).Length <= 128, "RAGFlow's name limit");
    }

    [Theory]
    [InlineData("cmp-x (1)", true)]
    [InlineData("cmp-x (12)", true)]
    [InlineData("cmp-x(1)", false)]
    [InlineData("cmp-x", false)]
    [InlineData("cmp-x (one)", false)]
    [InlineData("cmp-xy (1)", false)]
    public void Langflow_twins_are_name_space_parenthesised_number(string candidate, bool twin)
    {
        Assert.Equal(twin, TenantNames.IsLangflowTwin(candidate, "cmp-x"));
    }

    [Theory]
    [InlineData("cmp-x(1)", true)]
    [InlineData("CMP-X(2)", true)]
    [InlineData("cmp-x (1)", false)]
    [InlineData("cmp-x", false)]
    [InlineData("cmp-xy(1)", false)]
    public void Ragflow_twins_are_name_parenthesised_number_in_any_case(string candidate, bool twin)
    {
        Assert.Equal(twin, TenantNames.IsRagflowTwin(candidate, "cmp-x"));
    }

    [Theory]
    [InlineData("Customer Support Agent cmp-0f8fad5bd9cb469fa16570867728950e", true)]
    [InlineData("Old Name cmp-0f8fad5bd9cb469fa16570867728950e (2)", true)]
    [InlineData("Customer Support Agent cmp-1f8fad5bd9cb469fa16570867728950e", false)]
    [InlineData("Customer Support Agent cmp-0f8fad5bd9cb469fa16570867728950e copy", false)]
    public void A_flow_belongs_to_its_resource_whatever_the_offering_was_called(string name, bool ours)
    {
        Assert.Equal(ours, TenantNames.IsFlowOf(name, Resource));
    }

    [Fact]
    public void Upstream_failures_become_transient_or_permanent_with_a_buyer_message()
    {
        const string Failure = "The agent could not be created";

        Assert.IsType<TransientProvisioningException>(LangflowRagflowProvisioner.Classify(Failure, Api(HttpStatusCode.ServiceUnavailable)));
        Assert.IsType<TransientProvisioningException>(LangflowRagflowProvisioner.Classify(Failure, Api(HttpStatusCode.TooManyRequests)));
        Assert.IsType<TransientProvisioningException>(LangflowRagflowProvisioner.Classify(Failure, new HttpRequestException("connection refused")));
        Assert.IsType<TransientProvisioningException>(LangflowRagflowProvisioner.Classify(Failure, new TaskCanceledException("timeout")));
        Assert.IsType<TransientProvisioningException>(LangflowRagflowProvisioner.Classify(Failure, Wrapped(new RagflowException(100, "ConnectionError", HttpStatusCode.OK, "/api/v1/datasets"))));

        var denied = LangflowRagflowProvisioner.Classify(Failure, Api(HttpStatusCode.Unauthorized));
        Assert.IsType<PermanentProvisioningException>(denied);
        Assert.Equal("The agent could not be created: the agent runtime refused the provider's credentials; the provider has to correct the adapter's configuration.", denied!.Message);
        var refused = LangflowRagflowProvisioner.Classify(Failure, Wrapped(new RagflowException(101, "Field: <name>", HttpStatusCode.OK, "/api/v1/datasets")));
        Assert.Equal("The agent could not be created: the knowledge-base service refused the request (code 101).", refused!.Message);
        Assert.IsType<PermanentProvisioningException>(LangflowRagflowProvisioner.Classify(Failure, Wrapped(new RagflowException(401, "<Unauthorized>", HttpStatusCode.Unauthorized, "/api/v1/datasets"))));
        Assert.IsType<PermanentProvisioningException>(LangflowRagflowProvisioner.Classify(Failure, new CryptographicException("key not found")));
        Assert.IsType<PermanentProvisioningException>(LangflowRagflowProvisioner.Classify(Failure, new FlowTemplateException("bad")));
        Assert.Null(LangflowRagflowProvisioner.Classify(Failure, new PermanentProvisioningException("as is")));
        Assert.Null(LangflowRagflowProvisioner.Classify(Failure, new InvalidOperationException("a bug")));
    }

    [Fact]
    public void Credentials_round_trip_through_data_protection_and_passwords_are_long_and_random()
    {
        var credentials = new UpstreamCredentials(new EphemeralDataProtectionProvider());

        var cipher = credentials.Protect("sk-secret");

        Assert.NotEqual("sk-secret", cipher);
        Assert.DoesNotContain("sk-secret", cipher, StringComparison.Ordinal);
        Assert.Equal("sk-secret", credentials.Unprotect(cipher));
        Assert.Throws<CryptographicException>(() => new UpstreamCredentials(new EphemeralDataProtectionProvider()).Unprotect(cipher));
        var passwords = Enumerable.Range(0, 50).Select(_ => UpstreamCredentials.NewPassword()).ToList();
        Assert.All(passwords, p => Assert.Equal(43, p.Length));
        Assert.Equal(50, passwords.Distinct().Count());
    }

    private static ApiException Api(HttpStatusCode status)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://langflow/api/v1/flows/");
        using var response = new HttpResponseMessage(status);
        return ApiException.Create(request, HttpMethod.Post, response, new RefitSettings()).GetAwaiter().GetResult();
    }

    private static ApiRequestException Wrapped(Exception inner) =>
        new(new HttpRequestMessage(HttpMethod.Post, "http://ragflow/api/v1/datasets"), HttpMethod.Post, new RefitSettings(), inner);
}
