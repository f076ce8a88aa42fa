"""The live runtime (`ivr serve`): the FastAGI server, the call-records writer, the AMI
connection and hot reload of the flows, in one asyncio process."""
