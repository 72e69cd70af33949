using CmpWaldurAdapter.Langflow.Contracts;
using Refit;

namespace CmpWaldurAdapter.Langflow.Api;

/// <summary>
/// The Langflow 1.4.2 operations the adapter calls, over the DTOs NSwag generates from <c>openapi/langflow.json</c>.
/// Paths keep Langflow's trailing slashes exactly (FastAPI answers a wrong one with a 307 that can drop the
/// body and auth). Every call names who it runs as: the superuser's token for user administration, a tenant's
/// key for everything inside a tenant.
/// </summary>
[Headers("Accept: application/json")]
public interface ILangflowApi
{
    // Login (form-encoded: grant_type=password, username, password)

    [Post("/api/v1/login")]
    Task<Token> LoginAsync([Body(BodySerializationMethod.UrlEncoded)] IDictionary<string, string> form, CancellationToken cancellationToken);

    // Users (superuser)

    [Post("/api/v1/users/")]
    Task<UserRead> CreateUserAsync([Body] UserCreate user, [Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    [Get("/api/v1/users/")]
    Task<UsersResponse> ListUsersAsync(int skip, int limit, [Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    [Patch("/api/v1/users/{userId}")]
    Task<UserRead> UpdateUserAsync(Guid userId, [Body] UserUpdate update, [Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    [Delete("/api/v1/users/{userId}")]
    Task DeleteUserAsync(Guid userId, [Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    // API keys: always the caller's own

    [Get("/api/v1/api_key/")]
    Task<ApiKeysResponse> ListApiKeysAsync([Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    [Post("/api/v1/api_key/")]
    Task<UnmaskedApiKeyRead> CreateApiKeyAsync([Body] ApiKeyCreate key, [Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    [Delete("/api/v1/api_key/{apiKeyId}")]
    Task DeleteApiKeyAsync(Guid apiKeyId, [Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    // Projects (formerly folders)

    [Get("/api/v1/projects/")]
    Task<List<FolderRead>> ListProjectsAsync([Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    [Post("/api/v1/projects/")]
    Task<FolderRead> CreateProjectAsync([Body] FolderCreate project, [Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    [Delete("/api/v1/projects/{projectId}")]
    Task DeleteProjectAsync(Guid projectId, [Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    // Flows

    /// <summary>
    /// Every flow of the caller, without graphs. With <c>get_all=true</c> 1.4.2 ignores <c>folder_id</c>, so
    /// callers filter by project themselves.
    /// </summary>
    [Get("/api/v1/flows/?get_all=true&header_flows=true")]
    Task<List<FlowHeader>> ListFlowHeadersAsync([Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    [Post("/api/v1/flows/")]
    Task<FlowRead> CreateFlowAsync([Body] FlowCreate flow, [Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    [Get("/api/v1/flows/{flowId}")]
    Task<FlowRead> GetFlowAsync(Guid flowId, [Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    [Patch("/api/v1/flows/{flowId}")]
    Task<FlowRead> UpdateFlowAsync(Guid flowId, [Body] FlowUpdate update, [Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    [Delete("/api/v1/flows/{flowId}")]
    Task DeleteFlowAsync(Guid flowId, [Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    // Running (API key only in 1.4.2)

    [Post("/api/v1/run/{flowId}?stream=false")]
    Task<RunResponse> RunAsync(Guid flowId, [Body] SimplifiedAPIRequest request, [Property(LangflowCredential.PropertyKey)] LangflowCredential credential, CancellationToken cancellationToken);

    // Readiness: the database and the chat cache answer (500 otherwise)

    [Get("/health_check")]
    Task<HealthResponse> HealthCheckAsync(CancellationToken cancellationToken);
}
